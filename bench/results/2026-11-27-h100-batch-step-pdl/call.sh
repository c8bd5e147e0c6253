#!/usr/bin/env bash
# Session 15, PDL call (issues 7, 8): every edge of a batch's step with PDL by default (one sequence
# unchanged). A/B against main (the 8B model step at 4 x 64K, the engine's batch and single steps),
# then the GPU test suites (batches now take PDL by default) and memcheck over the batch tests.
set -u
O=$OUT/p; mkdir -p $O devbin; tar xJf devpack/bins.txz -C devbin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
M="bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 --modes dense losa --bounds8 --reps 4"
for v in new main; do
  b=devbin/losa; [ $v = main ] && b=devbin/main/losa
  timeout 110 $b $M --json $O/model_step_$v.json > $O/model_step_$v.txt 2>&1
  echo "model step $v rc=$? $(( $(date +%s) - start )) s $(grep -E '^4x65536' $O/model_step_$v.txt | tr -s ' ' | tr '\n' ';')" | tee -a $O/summary.txt
done
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --reps 30"
for v in main new; do
  b=devbin/losa; [ $v = main ] && b=devbin/main/losa
  timeout 60 $b $AB --json $O/ab_$v.json > $O/ab_$v.log 2>&1; echo "bench $v rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
done
timeout 60 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "losa_gpu_runtime_tests rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]|tests? from .* ran|^\[  FAILED" $O/gpu_runtime_tests.log | tail -4 | tee -a $O/summary.txt
left=$(( 560 - ($(date +%s) - start) ))
timeout $(( left - 70 )) devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "losa_gpu_tests rc=$? (limit $(( left - 70 )) s) $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]|tests? from .* ran|^\[  FAILED" $O/gpu_tests.log | tail -6 | tee -a $O/summary.txt
grep -c '^\[       OK' $O/gpu_tests.log | sed 's/^/gpu tests ok: /' | tee -a $O/summary.txt
left=$(( 585 - ($(date +%s) - start) ))
[ $left -gt 20 ] && timeout $left compute-sanitizer --tool memcheck --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter='GpuBatch.*-*L12000*:*L4100*:*L9000*' > $O/sanitizer_memcheck.log 2>&1
echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $O/sanitizer_memcheck.log | tail -1) $(grep -c '^\[       OK' $O/sanitizer_memcheck.log) ok" | tee -a $O/summary.txt
cd $OUT && tar czf p.tgz p && rm -rf p && ls -la
