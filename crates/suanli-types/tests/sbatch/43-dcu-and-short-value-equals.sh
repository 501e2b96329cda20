#!/bin/bash
#SBATCH --gres=dcu:4
#SBATCH -N=2
python hip_train.py
