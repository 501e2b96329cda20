#!/bin/bash
#SBATCH -D /scratch/user/run42
#SBATCH --mail-type=END,FAIL
#SBATCH --mail-user=someone@example.edu
#SBATCH --gres=gpu:1
#SBATCH -t 0-04:00
./run.sh
