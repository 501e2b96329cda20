#!/bin/bash
#SBATCH --gres=npu:8
#SBATCH -p ascend
#SBATCH -t 10:00:00
python train_mindspore.py
