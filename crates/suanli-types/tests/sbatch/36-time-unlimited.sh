#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH -t UNLIMITED
python forever.py
