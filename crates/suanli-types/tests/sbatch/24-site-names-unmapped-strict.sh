#!/bin/bash
# suanli: strict
#SBATCH -p gpu_v100_long
#SBATCH --gres=gpu:1
python train.py
