#!/bin/bash
#SBATCH -J llama-sft
#SBATCH -N 2
#SBATCH --gpus-per-node=8
#SBATCH --container-image=nvcr.io/nvidia/pytorch:24.05-py3
#SBATCH --container-mounts=/lustre/data:/data
#SBATCH -t 2-00:00:00

srun python -m torch.distributed.run sft.py
