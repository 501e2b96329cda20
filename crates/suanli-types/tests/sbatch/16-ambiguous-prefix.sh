#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --gpu=2
python run.py
