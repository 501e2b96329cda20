#!/bin/bash
# suanli: strict
#SBATCH --gres=gpu:v100:2
#SBATCH -t 4:00:00
python infer.py
