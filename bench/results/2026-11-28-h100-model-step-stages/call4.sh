#!/usr/bin/env bash
# Session 19, call 4 (issues 8, 10): the committed kernels (d81ac55's model step) through the
# whole of issue 8's benchmark: prefill at 8K / 32K / 64K, every mode (with 8-bit bounds) at
# 1 x 64K, 4 x 64K and 8 x 32K, each broken down by kernel group; and issue 10's 4K dense subset
# on the GPU (its answers against the CPU's committed cpu-dense-4k.json, compared on the CPU machine).
set -u
O=$OUT/c4; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s)
timeout 60 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 4096 --samples 4 --modes dense \
  --block-size 16 --json $O/gpu-dense-4k.json > $O/gpu-dense-4k.txt 2>&1; note eval_4k $?
start=$(date +%s)
timeout 480 devbin/losa bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 32768 65536 \
  --batches 1x65536 4x65536 8x32768 --modes dense quest losa sparsed --bounds8 --reps 4 --stages \
  --json $O/bench_model.json > $O/bench_model.txt 2>&1; note bench_model $?
cat $O/summary.txt; tail -32 $O/bench_model.txt | cut -c1-400
cd $OUT && tar czf c4.tgz c4 && rm -rf c4
