#!/bin/bash
#SBATCH --job-name=commented   # a friendly name
#SBATCH --nodes=1              # one node is enough
#SBATCH --gres=gpu:2           # two cards
#SBATCH --time=45              # 45 minutes, not seconds
#SBATCH --qos=low #cheap
python eval.py
