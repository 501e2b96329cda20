#!/bin/bash
#SBATCH -kN2
#SBATCH -G16 -t 60
#SBATCH -Qv
srun hostname
