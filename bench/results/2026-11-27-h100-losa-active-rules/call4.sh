#!/usr/bin/env bash
# Session 17, call 4 (issue 10): the delta_min rule's threshold and page budget, 48 samples, 16K / 32K.
set -u
O=$OUT/b; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
timeout 400 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 16384 32768 --samples 48 --block-size 16 \
    --modes losa --budgets 2048 4096 --k-active --tau --delta-min 0.005 0.01 0.02 --json $O/eval48_delta_budgets.json > $O/eval48_delta_budgets.txt 2>&1
echo "eval rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
cat $O/summary.txt; tail -17 $O/eval48_delta_budgets.txt
cd $OUT && tar czf b.tgz b && rm -rf b && ls -la
