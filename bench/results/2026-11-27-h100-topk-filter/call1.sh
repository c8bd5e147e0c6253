#!/usr/bin/env bash
# Session 18, call 1 (issue 7): the top-k's small-k filter. A/B against main (the engine's single
# 64K step and the 8 x 32K batch, main and new alternating twice), the top-k tests first, then the
# GPU suites (the seventeenth round's read-through refactor was owed a GPU run) and the sanitizers
# over the selection and complement tests.
set -u
O=$OUT/c1; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
timeout 60 devbin/losa_gpu_tests --gtest_filter='GpuSelect.*' > $O/topk_tests.log 2>&1
echo "topk tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' $O/topk_tests.log | tr '\n' ' ') $(( $(date +%s) - start )) s" >> $O/summary.txt
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 16 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --reps 30"
for round in 1 2; do
  for v in main new; do
    b=devbin/losa; [ $v = main ] && b=devbin/main/losa
    timeout 70 $b $AB --json $O/ab_${v}_$round.json > $O/ab_${v}_$round.txt 2>&1
    echo "bench $v $round rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
  done
done
timeout 60 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "gpu runtime tests rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
left=$(( 500 - ($(date +%s) - start) ))
timeout $left devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "gpu tests rc=$? (limit $left s) $(( $(date +%s) - start )) s" >> $O/summary.txt
f='GpuSelect.*:*Complement*:GpuBatch.Losa*:-*L12000*:*L4100*:*L9000*:*L3000*'
for tool in memcheck racecheck; do
  [ $tool = racecheck ] && f='GpuSelect.*:*Complement*:-*L12000*:*L4100*:*L9000*:*L3000*'
  left=$(( 585 - ($(date +%s) - start) ))
  [ $left -gt 15 ] && timeout $left compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$f" --gtest_brief=1 > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1) $(( $(date +%s) - start )) s" >> $O/summary.txt
done
cat $O/summary.txt; grep -E "^\[  (PASSED|FAILED)|^\[  FAILED" $O/gpu_tests.log $O/gpu_runtime_tests.log | tail -8
for f in $O/ab_*_1.txt $O/ab_*_2.txt; do echo "== $f"; grep -E "losa b=256 k=(1|4)  |quest|dense|stages of losa b=256 k=4 " $f | head -12; done
cd $OUT && tar czf c1.tgz c1 && rm -rf c1 && ls -la
