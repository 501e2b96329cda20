#!/bin/bash
#SBATCH --gpus=1
#SBATCH --gres=gpumem:40g
#SBATCH -t 3:00:00
python big_model.py
