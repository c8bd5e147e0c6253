#!/usr/bin/env bash
set -u
O=$OUT/c7; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
timeout 200 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "losa_gpu_tests rc=$?" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]|tests? from .* ran" $O/gpu_tests.log | tail -3 | tee -a $O/summary.txt
grep -E "FAILED|Failure" $O/gpu_tests.log | head -20 | tee -a $O/summary.txt
timeout 60 devbin/perturbed/losa_gpu_tests --gtest_filter='GpuAttentionStages.*' > $O/perturbed_test.log 2>&1; echo "perturbed (must fail) rc=$?" | tee -a $O/summary.txt
grep -cE "Failure" $O/perturbed_test.log | tee -a $O/summary.txt
F='GpuAttentionStages.*:GpuBatch.*:GpuGraph.*:*Losa*-*L12000*:*L4100*:*L1000_*:*L9000*:*L3000*'
for tool in memcheck racecheck; do
  timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$F" --gtest_brief=1 > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1)" | tee -a $O/summary.txt
done
cd $OUT && tar czf c7.tgz c7 && rm -rf c7
