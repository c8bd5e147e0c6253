#!/usr/bin/env bash
# Session 14, training call 4: n3 continued (lr schedule stretched to 12,000 steps), then losa eval of the result
# at 4K/8K/16K/32K (16 samples, block 16) and at 4K/32K with blocks 4 and 32.
set -u
EVAL_LENGTHS="4096 8192 16384 32768" EVAL_SAMPLES=16 timeout 470 bash train/gpu_sweep.sh 280 .train/sweep22.txt > $OUT/sweep_out.txt 2>&1
for b in 4 32; do
  timeout 55 .train/losa eval --model /tmp/model --device cuda --lengths 4096 32768 --samples 8 --block-size $b \
    --budgets 128 256 512 1024 --k-active 0 --tau 0.5 --json /tmp/eval_b$b.json > /tmp/eval_b$b.txt 2>&1
  echo "eval block $b rc=$?" >> $OUT/sweep_out.txt
done
tar czf $OUT/model.tgz -C /tmp model
tar czf $OUT/eval_blocks.tgz -C /tmp eval_b4.json eval_b4.txt eval_b32.json eval_b32.txt
rm -f $OUT/eval.png
ls -la $OUT
