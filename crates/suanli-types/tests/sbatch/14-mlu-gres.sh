#!/bin/bash
#SBATCH --gres=mlu:4
#SBATCH --time=90
python cnnl_bench.py
