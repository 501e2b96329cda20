#!/bin/bash
#SBATCH --begin=now+2hours
#SBATCH --gres=gpu:1
python scheduled.py
