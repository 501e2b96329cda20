#!/bin/bash
#SBATCH --gres=gpu:a100:4
#SBATCH --time=1-00:00:00
#SBATCH --mem-per-gpu=64G
python finetune.py
