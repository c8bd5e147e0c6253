#!/usr/bin/env bash
# Session 16, sixth call (issue 10): continue c2 from step 8,888, score every mode at 4K..32K and
# LoSA tau 0.75 at every budget and length.
set -u
mkdir -p /tmp/x
KEEP=c2 EVAL_LENGTHS="4096 8192 16384 32768" EVAL_SAMPLES=16 bash train/gpu_sweep.sh 370 .train/sweep.txt > /tmp/x/sweep.txt 2>&1
tail -3 /tmp/x/sweep.txt
start=$(date +%s)
timeout 90 .train/losa eval --model /tmp/model --device cuda --lengths 4096 8192 16384 32768 --samples 16 --block-size 16 \
  --modes losa --budgets 128 256 512 1024 --tau 0.75 --json /tmp/x/eval_tau75.json > /tmp/x/eval_tau75.txt 2>&1
echo "eval tau 0.75 rc=$? $(( $(date +%s) - start )) s" | tee -a /tmp/x/summary.txt
tar czf $OUT/extra.tgz -C /tmp/x . && ls -la $OUT
