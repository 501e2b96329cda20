#!/bin/bash
# suanli: cards
#SBATCH -N 2
#SBATCH -n 128
#SBATCH -t 120
srun ./lammps -in in.lj
