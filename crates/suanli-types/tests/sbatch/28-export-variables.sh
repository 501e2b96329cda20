#!/bin/bash
#SBATCH --export=ALL,OMP_NUM_THREADS=8,HF_HOME=/data/hf,WANDB_MODE
#SBATCH --gres=gpu:1
python train.py
