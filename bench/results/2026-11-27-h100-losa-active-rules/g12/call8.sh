#!/usr/bin/env bash
# Session 17, training calls 8 and 9 (this script, run twice): continue g12, then dense on 48 samples
# at 16K / 32K (the shipped 6-layer model: 86.2 / 77.1).
set -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
KEEP=g12 bash train/gpu_sweep.sh 380 .train/sweep.txt > /tmp/sweep_out.txt 2>&1
tail -6 /tmp/sweep_out.txt
export PYTHONPATH=/tmp/site
python3 train/export.py --checkpoint /tmp/sweep/g12 --out /tmp/model > /tmp/export.txt 2>&1; echo "export rc=$?"
timeout 150 .train/losa eval --model /tmp/model --device cuda --lengths 16384 32768 --samples 48 --block-size 16 \
  --modes dense --json $OUT/eval48_dense.json > $OUT/eval48_dense.txt 2>&1; echo "eval rc=$?"
tail -12 $OUT/eval48_dense.txt
ls -la $OUT
