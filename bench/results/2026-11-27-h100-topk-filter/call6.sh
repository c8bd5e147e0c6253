#!/usr/bin/env bash
# Session 18, call 6 (issue 8): the 8B model step at 4 x 64K once more at b396e77 (the landed
# filter), a second sample of the LoSA / dense ratio that call 4 put at 1.996x.
set -u
O=$OUT/c6; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
timeout 110 devbin/losa bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 \
  --modes dense losa --bounds8 --reps 4 --json $O/model_step.json > $O/model_step.txt 2>&1
echo "model step rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
cat $O/summary.txt; tail -5 $O/model_step.txt
cd $OUT && tar czf c6.tgz c6 && rm -rf c6
