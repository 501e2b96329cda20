#!/bin/bash
#SBATCH -N 2-4
#SBATCH --gres=gpu:8
srun python elastic.py
