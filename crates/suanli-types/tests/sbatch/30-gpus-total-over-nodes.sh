#!/bin/bash
#SBATCH -N 4
#SBATCH --gpus=a100:32
#SBATCH -t 3-00:00:00
srun python megatron.py
