#!/bin/bash
#SBATCH -p a100_tandon
#SBATCH --qos=mcml
#SBATCH --gres=gpu:2
#SBATCH -t 6:00:00
python train.py
