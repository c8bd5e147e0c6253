#!/usr/bin/env bash
# Session 16, fourth call (issue 10): continue c2 (terminating eos in the words' mean), score every
# mode at 4K/16K/32K, then LoSA's active rows with larger page budgets at 16K/32K.
set -u
mkdir -p /tmp/x
KEEP=c2 EVAL_LENGTHS="4096 16384 32768" EVAL_SAMPLES=16 bash train/gpu_sweep.sh 330 .train/sweep.txt > /tmp/x/sweep.txt 2>&1
tail -3 /tmp/x/sweep.txt
start=$(date +%s)
timeout 150 .train/losa eval --model /tmp/model --device cuda --lengths 16384 32768 --samples 16 --block-size 16 \
  --modes dense losa quest --budgets 256 1024 4096 --k-active 8 --tau 0.5 0.75 \
  --json /tmp/x/eval_budgets.json > /tmp/x/eval_budgets.txt 2>&1
echo "eval budgets rc=$? $(( $(date +%s) - start )) s" | tee -a /tmp/x/summary.txt
tar czf $OUT/extra.tgz -C /tmp/x . && ls -la $OUT
