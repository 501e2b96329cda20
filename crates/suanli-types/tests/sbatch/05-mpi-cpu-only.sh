#!/bin/bash
#SBATCH --job-name=wrf
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=64
#SBATCH --time=08:00:00
#SBATCH --partition=compute

module load intel-mpi
srun ./wrf.exe
