#!/bin/bash
#SBATCH --gres=gpu:1
# SBATCH --time=10:00:00
  #SBATCH -N 2
##SBATCH --array=1-10
#sbatch --qos=low
python run.py
