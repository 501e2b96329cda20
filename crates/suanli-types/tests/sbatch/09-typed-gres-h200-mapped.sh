#!/bin/bash
#SBATCH --gres=gpu:h200:8
#SBATCH -N 4
#SBATCH -t 48:00:00
#SBATCH --exclusive
srun python pretrain.py
