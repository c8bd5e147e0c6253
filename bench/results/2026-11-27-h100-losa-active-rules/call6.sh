#!/usr/bin/env bash
# Session 17, call 6: the complement kernel's split merge in parallel: GPU tests, sanitizers over
# the complement's tests, and the 64K bench again (plain LoSA and the complement, main's kernels otherwise).
set -u
O=$OUT/f; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
timeout 120 devbin/losa bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense losa complement \
  --no-curve --batch-seqs 0 --model-layers 0 --json $O/bench.json > $O/bench.txt 2>&1
echo "bench rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
timeout 260 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "gpu tests rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
timeout 60 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "gpu runtime tests rc=$?" >> $O/summary.txt
f='*Complement*:-*L12000*:*L4100*:*L9000*:*L3000*'
for tool in memcheck racecheck; do
  timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$f" --gtest_brief=1 > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1) $(( $(date +%s) - start )) s" >> $O/summary.txt
done
cat $O/summary.txt; grep -E "^\[  (PASSED|FAILED)" $O/gpu_tests.log $O/gpu_runtime_tests.log | tail -8; grep -E "losa b=|dense|stages" $O/bench.txt | head -14
cd $OUT && tar czf f.tgz f && rm -rf f && ls -la
