#!/bin/bash
#SBATCH --err=job.err
#SBATCH --out=job.out
#SBATCH --part=gpu
#SBATCH --job=prefixed
#SBATCH --gres=gpu:2
#SBATCH --time=2:00:00
python run.py
