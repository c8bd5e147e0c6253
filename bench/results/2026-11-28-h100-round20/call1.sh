#!/usr/bin/env bash
# Session 20, call 1 (issue 7): the prepared full-step-without-active-set.patch (devbin/losa)
# against main 2156cbd (devbin/main/losa), alternating, single 64K step and the 8 x 32K batch;
# dense at B = 32 and 64 with stages and ncu of the B = 32 attention kernel (the wgmma question);
# the runtime tests and the whole GPU suite on the candidate (owed for the refactor 44322f5 too).
set -u
O=$OUT/c1; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --no-bounds8 --reps 30"
for v in cand main cand main; do
  b=devbin/losa; [ $v = main ] && b=devbin/main/losa
  start=$(date +%s); timeout 90 $b $AB --json $O/ab_$v.json >> $O/ab_$v.txt 2>&1; note "bench $v" $?
done
start=$(date +%s); timeout 60 devbin/main/losa bench --lengths 32768 65536 --blocks 4 32 64 --budgets 256 --k-active 4 --modes dense \
  --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 30 --json $O/dense_blocks.json > $O/dense_blocks.txt 2>&1; note dense_blocks $?
start=$(date +%s); timeout 120 ncu --nvtx --nvtx-include "single dense/" --clock-control none --set full --import-source yes \
  -k regex:"paged_attention" --launch-count 1 -o $O/dense32 devbin/main/losa bench --lengths 65536 --blocks 32 --budgets 256 \
  --k-active 4 --modes dense --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 2 > $O/ncu_run.txt 2>&1; note ncu $?
ncu -i $O/dense32.ncu-rep --page details > $O/ncu_dense32.txt 2>&1
ncu -i $O/dense32.ncu-rep --page source --csv --print-source sass > $O/ncu_sass_dense32.csv 2>&1
(cd $OUT && tar czf c1a.tgz c1)
start=$(date +%s); timeout 40 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
start=$(date +%s); timeout 250 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; note gpu_tests $?
cat $O/summary.txt; grep -h 'PASSED\|FAILED  \]' $O/*.log | sort | uniq -c | head -20
for v in cand main; do grep -E 'losa b=256|quest|dense' $O/ab_$v.txt | cut -c1-150; done
grep -E 'dense' $O/dense_blocks.txt | cut -c1-200
cd $OUT && tar czf c1.tgz c1 && rm -rf c1 c1a.tgz
