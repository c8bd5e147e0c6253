#!/usr/bin/env bash
# Session 17, training call 1 (issue 10's prepared row): the shipped model grown to 12 layers.
set -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
KEEP=g12 bash train/gpu_sweep.sh 490 .train/sweep.txt > /tmp/sweep_out.txt 2>&1
tail -25 /tmp/sweep_out.txt
