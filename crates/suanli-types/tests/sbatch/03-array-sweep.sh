#!/bin/bash
#SBATCH --job-name=sweep
#SBATCH --array=0-99%10
#SBATCH --gres=gpu:1
#SBATCH --time=30

python sweep.py --index "$SLURM_ARRAY_TASK_ID"
