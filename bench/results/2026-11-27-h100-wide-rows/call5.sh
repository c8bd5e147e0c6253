#!/usr/bin/env bash
# Session 18, call 5 (issues 10, 7): LoSA's wide rows (change >= 0.5: 2,048 tokens of pages) with and
# without the complement on the shipped model (48 samples, 16K / 32K, budget 128, the seventeenth
# round's examples: its tau / delta_min rows, plain and complement, are this call's control), their GPU
# tests and memcheck, and the top-k filter's planted defects (three binaries that must fail
# GpuSelect).
set -u
O=$OUT/w; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
E="devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 16384 32768 --samples 48 --block-size 16 --modes losa"
( timeout 230 $E --budgets 128 --k-active --tau 0.5 --delta-min 0.01 --complement --wide-delta 0.5 --wide-budget 2048 \
    --json $O/eval48_wide.json > $O/eval48_wide.txt 2>&1
  echo "eval rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt ) &
for p in tie_order keep_last_bit floor_one_high; do
  timeout 60 devbin/perturbed/$p --gtest_filter='GpuSelect.*' --gtest_brief=1 > $O/perturbed_$p.log 2>&1
  echo "perturbed $p (must fail) rc=$? $(grep -c 'Failure' $O/perturbed_$p.log) failures $(( $(date +%s) - start )) s" >> $O/summary.txt
done
timeout 120 devbin/losa_gpu_tests --gtest_filter='*WideRows*:GpuSelect.*:GpuBatch.Losa*' > $O/gpu_tests.log 2>&1
echo "gpu tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' $O/gpu_tests.log | tr '\n' ' ') $(( $(date +%s) - start )) s" >> $O/summary.txt
timeout 40 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1
echo "gpu runtime tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' $O/gpu_runtime_tests.log | tr '\n' ' ')" >> $O/summary.txt
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 devbin/losa_gpu_tests \
  --gtest_filter='*WideRows*:-*L12000*:*L4100*:*L9000*:*L3000*' --gtest_brief=1 > $O/sanitizer_memcheck.log 2>&1
echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $O/sanitizer_memcheck.log | tail -1) $(( $(date +%s) - start )) s" >> $O/summary.txt
wait
cat $O/summary.txt; tail -24 $O/eval48_wide.txt
cd $OUT && tar czf w.tgz w && rm -rf w && ls -la
