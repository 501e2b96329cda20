#!/bin/sh
#SBATCH -t 7-00:00:00
#SBATCH -c 32
#SBATCH --mem=256G
./assemble_genome --threads 32
