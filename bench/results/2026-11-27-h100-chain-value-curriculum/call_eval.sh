#!/usr/bin/env bash
# Session 15, last call (issue 10): the new shipped model at 8K (every mode) and LoSA's larger
# active sets at 16K/32K (budgets 128, 256).
set -u
O=$OUT/e; mkdir -p $O devbin; tar xJf devpack/bins.txz -C devbin losa
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
timeout 120 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 8192 --samples 16 --block-size 16 \
  --budgets 128 256 512 1024 --k-active 0 --tau 0.5 --json $O/eval_8k.json > $O/eval_8k.txt 2>&1
echo "eval 8k rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
timeout 170 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 16384 32768 --samples 16 \
  --block-size 16 --modes dense losa --budgets 128 256 --k-active 4 8 --tau 0.75 0.9 --json $O/eval_active.json > $O/eval_active.txt 2>&1
echo "eval active sets rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
cd $OUT && tar czf e.tgz e && rm -rf e && ls -la
