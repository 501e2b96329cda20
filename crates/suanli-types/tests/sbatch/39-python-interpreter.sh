#!/usr/bin/env python3
#SBATCH --job-name=py-batch
#SBATCH --gres=gpu:1
#SBATCH --time=20
import torch
print(torch.cuda.device_count())
