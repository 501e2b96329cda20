#!/bin/bash
# suanli: strict, chips
#SBATCH --gres=gpu:b300:8
#SBATCH -t 1:00:00
python bench.py
