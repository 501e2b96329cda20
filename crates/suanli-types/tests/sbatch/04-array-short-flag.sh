#!/bin/bash
#SBATCH -a 1-20
#SBATCH -G 1
srun ./run_case $SLURM_ARRAY_TASK_ID
