#!/usr/bin/env bash
# Session 17, call 5: after the review mends. GPU tests (whole suites), sanitizers over the
# complement's tests (kernels and runtime), a planted defect in the complement kernel (the row of
# a query head: token * group, without the head's offset) that the tests must catch, the
# complement's cost at 64K (bench), and its 48-sample evaluation again (the empty threshold moved).
set -u
O=$OUT/r; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
start=$(date +%s)
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
( timeout 300 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 16384 32768 --samples 48 --block-size 16 \
    --modes losa --budgets 128 256 --k-active --tau 0.5 --delta-min 0.01 --complement --json $O/eval48.json > $O/eval48.txt 2>&1
  echo "eval rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt ) &
timeout 260 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "gpu tests rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
timeout 60 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "gpu runtime tests rc=$?" >> $O/summary.txt
timeout 60 devbin/perturbed_gpu_tests --gtest_filter='*Complement*' --gtest_brief=1 > $O/perturbed.log 2>&1
echo "perturbed (must fail) rc=$? $(grep -c '^\[  FAILED  \]' $O/perturbed.log) failed lines" >> $O/summary.txt
wait
timeout 120 devbin/losa bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense losa complement \
  --no-curve --batch-seqs 0 --model-layers 0 --json $O/bench.json > $O/bench.txt 2>&1
echo "bench rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
f='*Complement*:-*L12000*:*L4100*:*L9000*:*L3000*'
for tool in memcheck racecheck; do
  timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$f" --gtest_brief=1 > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1) $(( $(date +%s) - start )) s" >> $O/summary.txt
done
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 devbin/losa_gpu_runtime_tests --gtest_filter='*Complement*' --gtest_brief=1 > $O/sanitizer_runtime.log 2>&1
echo "sanitizer runtime memcheck rc=$? $(grep -E 'ERROR SUMMARY' $O/sanitizer_runtime.log | tail -1) $(( $(date +%s) - start )) s" >> $O/summary.txt
cat $O/summary.txt; grep -E "^\[  (PASSED|FAILED)" $O/gpu_tests.log $O/gpu_runtime_tests.log | tail -8; grep -E "losa b=|dense" $O/bench.txt | head -12; tail -24 $O/eval48.txt
cd $OUT && tar czf r.tgz r && rm -rf r && ls -la
