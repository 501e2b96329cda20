#!/bin/bash
#SBATCH -N 1 --gres=gpu:1
#SBATCH hetjob
#SBATCH -N 4 -n 64
srun : ./coupled
