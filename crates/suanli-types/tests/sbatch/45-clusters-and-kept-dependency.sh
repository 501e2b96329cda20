#!/bin/bash
#SBATCH -M pcl-cb2,gz-ai-public
#SBATCH --gres=npu:8
#SBATCH --kill-on-invalid-dep=no
#SBATCH --dependency=afterok:41
#SBATCH -t 30
python train.py --device npu
