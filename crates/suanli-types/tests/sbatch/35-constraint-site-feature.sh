#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --constraint="ib&haswell"
python train.py
