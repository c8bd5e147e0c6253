#!/usr/bin/env bash
# Session 17, call 3: (1) issue 7's prepared diagnostic: ncu of the top-k and active-set kernels
# of one sequence's LoSA step (64K, B 16, budget 256, 4 active); (2) issue 10: the complement
# and delta_min at larger page budgets (1,024 / 4,096), 48 samples, 16K / 32K.
set -u
O=$OUT/n; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
timeout 200 ncu --nvtx --nvtx-include "single losa b=256 k=4/" --clock-control none --set full --import-source no \
  -k regex:"topk|active_set" --launch-count 2 devbin/losa bench --lengths 65536 --blocks 16 --budgets 256 \
  --k-active 4 --modes losa --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 2 > $O/ncu_topk_active.txt 2>&1
echo "ncu rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
timeout 330 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 16384 32768 --samples 48 --block-size 16 \
    --modes losa --budgets 1024 4096 --k-active --tau 0.5 --delta-min 0.01 --complement --json $O/eval48_budgets.json > $O/eval48_budgets.txt 2>&1
echo "eval rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
cat $O/summary.txt; tail -25 $O/eval48_budgets.txt; grep -E "Duration|^  [a-z_]+.*kernel|topk_kernel|active_set_kernel" $O/ncu_topk_active.txt | head -20
cd $OUT && tar czf n.tgz n && rm -rf n && ls -la
