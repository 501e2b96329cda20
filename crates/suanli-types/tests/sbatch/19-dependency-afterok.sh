#!/bin/bash
#SBATCH --job-name=postprocess
#SBATCH --dependency=afterok:4242
#SBATCH --gres=gpu:1
python post.py
