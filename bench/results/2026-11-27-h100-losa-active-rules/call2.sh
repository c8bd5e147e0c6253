#!/usr/bin/env bash
# Session 17, call 2: losa_complement on the GPU (its tests first, then the whole suite, the
# sanitizers on its tests) and its 48-sample evaluation at 16K / 32K beside plain LoSA (tau 0.5,
# delta_min 0.01) and dense (eval in the background: accuracy and density are what it is for).
set -u
O=$OUT/c; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
timeout 60 devbin/losa_gpu_tests --gtest_filter='*Complement*:*DeltaMin*:GpuGraph.*' > $O/gpu_tests_new.log 2>&1
echo "new gpu tests rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
( timeout 420 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 16384 32768 --samples 48 --block-size 16 \
    --modes dense losa --budgets 128 256 --k-active --tau 0.5 --delta-min 0.01 --complement --json $O/eval48.json > $O/eval48.txt 2>&1
  echo "eval rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt ) &
timeout 240 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "gpu tests rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
timeout 60 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "gpu runtime tests rc=$?" >> $O/summary.txt
f='*Complement*:-*L12000*:*L4100*:*L9000*:*L3000*'
for tool in memcheck racecheck; do
  timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$f" --gtest_brief=1 > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1) $(( $(date +%s) - start )) s" >> $O/summary.txt
done
wait
cat $O/summary.txt; grep -E "^\[  (PASSED|FAILED)" $O/gpu_tests_new.log $O/gpu_tests.log | tail -12
cd $OUT && tar czf c.tgz c && rm -rf c && ls -la
