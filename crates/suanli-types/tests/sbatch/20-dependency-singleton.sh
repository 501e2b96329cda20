#!/bin/bash
#SBATCH -J nightly
#SBATCH -d singleton
#SBATCH --gres=gpu:1
./nightly.sh
