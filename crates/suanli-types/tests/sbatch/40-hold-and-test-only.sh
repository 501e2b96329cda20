#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --test-only
python run.py
