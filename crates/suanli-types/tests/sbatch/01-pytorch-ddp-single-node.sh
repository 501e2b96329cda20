#!/bin/bash
#SBATCH --job-name=resnet50-ddp
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:4
#SBATCH --time=12:00:00
#SBATCH --output=%x-%j.out
#SBATCH --error=%x-%j.err

module load cuda/12.1
torchrun --nproc_per_node=4 train.py --arch resnet50
