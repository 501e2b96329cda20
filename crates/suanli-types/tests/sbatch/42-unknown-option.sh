#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --frobnicate=yes
python run.py
