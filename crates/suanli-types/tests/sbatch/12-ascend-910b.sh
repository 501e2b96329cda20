#!/bin/bash
#SBATCH --job-name=pangu
#SBATCH --gres=gpu:910b:8
#SBATCH -N 2
#SBATCH -t 24:00:00
source /usr/local/Ascend/ascend-toolkit/set_env.sh
msrun --worker_num=16 train.py
