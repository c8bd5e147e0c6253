#!/usr/bin/env bash
# Session 14, kernel call: the mask staging with independent loads and the masked full-tile branch
# (issue 7): GPU tests, a planted defect that must fail, sanitizers, A/B against main alternating.
set -u
O=$OUT/k; mkdir -p $O devbin; tar xJf devpack/bins.txz -C devbin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
timeout 150 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "losa_gpu_tests rc=$?" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]|tests? from .* ran" $O/gpu_tests.log | tail -3 | tee -a $O/summary.txt
grep -E "^\[  FAILED" $O/gpu_tests.log | head -20 | tee -a $O/summary.txt
timeout 60 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "losa_gpu_runtime_tests rc=$?" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]" $O/gpu_runtime_tests.log | tee -a $O/summary.txt
F='*Own*:*QuestBounds8*:*LosaBounds8*:GpuAttentionStages.*:GpuBatch.*:GpuInvariants.*'
timeout 60 devbin/perturbed/losa_gpu_tests --gtest_filter="$F" --gtest_brief=1 > $O/perturbed.log 2>&1; echo "perturbed (must fail) rc=$? failed_tests=$(grep -c '^\[  FAILED  \] [A-Z]' $O/perturbed.log)" | tee -a $O/summary.txt
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --reps 30"
S2="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 4 --modes losa --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 30 --splits 2"
for i in 1; do
  for v in main new; do
    b=devbin/losa; [ $v = main ] && b=devbin/main/losa
    timeout 80 $b $AB --json $O/ab_${v}_$i.json > $O/ab_${v}_$i.log 2>&1; echo "ab $v $i rc=$?" >> $O/summary.txt
  done
done
for v in main new; do
  b=devbin/losa; [ $v = main ] && b=devbin/main/losa
  timeout 40 $b $S2 --json $O/splits2_${v}.json > $O/splits2_${v}.log 2>&1; echo "splits2 $v rc=$?" >> $O/summary.txt
done
timeout 40 devbin/losa $S2 --attend union --json $O/splits2_union.json > $O/splits2_union.log 2>&1
S="$F-*L12000*:*L4100*:*L1000_*:*L9000*:*L3000*"
for tool in memcheck racecheck; do
  timeout 75 compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$S" --gtest_brief=1 > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1) $(grep -E 'tests? from .* ran' $O/sanitizer_$tool.log | tail -1)" | tee -a $O/summary.txt
done
cd $OUT && tar czf k.tgz k && rm -rf k && ls -la
