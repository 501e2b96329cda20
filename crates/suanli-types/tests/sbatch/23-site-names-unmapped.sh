#!/bin/bash
#SBATCH -p gpu_v100_long
#SBATCH --qos=gold
#SBATCH -A proj1234
#SBATCH --gres=gpu:1
python train.py
