#!/usr/bin/env bash
# Session 16, last call (issue 10): the two candidate checkpoints (steps 8,888 and 10,988) on 48
# samples a task at 16K and 32K: dense, QUEST 256, LoSA tau 0.5 at 128 and 256.
set -u
O=$OUT/s; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
for m in m4 m6; do
  timeout 190 .train/losa eval --model .devp/$m --device cuda --lengths 16384 32768 --samples 48 --block-size 16 \
    --modes dense quest losa --budgets 128 256 --tau 0.5 --json $O/eval48_$m.json > $O/eval48_$m.txt 2>&1
  echo "eval $m rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
done
cd $OUT && tar czf s.tgz s && rm -rf s && ls -la
