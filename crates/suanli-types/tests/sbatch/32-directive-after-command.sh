#!/bin/bash
#SBATCH --gres=gpu:1
echo starting
#SBATCH --time=10:00:00
python long.py
