#!/bin/bash
#SBATCH --gres=gpu:2
#SBATCH -C a100
#SBATCH -t 100
python train.py
