#!/usr/bin/env bash
# Session 17, call 1: the delta_min rule on the GPU (tests, sanitizers on its tests) and its
# 48-sample evaluation at 16K / 32K beside dense and tau 0.5 (eval in the background: its times
# are shared with the tests; accuracy and density are what it is for).
set -u
O=$OUT/d; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
( timeout 480 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 16384 32768 --samples 48 --block-size 16 \
    --modes dense losa --budgets 128 256 --tau 0.5 --delta-min 0.005 0.01 0.05 --json $O/eval48.json > $O/eval48.txt 2>&1
  echo "eval rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt ) &
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
timeout 240 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "gpu tests rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
timeout 60 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "gpu runtime tests rc=$?" >> $O/summary.txt
f='*DeltaMin*:-*L12000*:*L4100*:*L9000*:*L3000*'
for tool in memcheck racecheck; do
  timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$f" --gtest_brief=1 > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1) $(( $(date +%s) - start )) s" >> $O/summary.txt
done
wait
cat $O/summary.txt; grep -E "PASSED|FAILED" $O/gpu_tests.log | tail -5
cd $OUT && tar czf d.tgz d && rm -rf d && ls -la
