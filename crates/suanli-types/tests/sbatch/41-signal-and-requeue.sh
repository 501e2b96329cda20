#!/bin/bash
#SBATCH --gres=gpu:4
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH -t 1-00:00:00
python train.py --resume
