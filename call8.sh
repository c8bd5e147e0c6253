#!/usr/bin/env bash
set -u
O=$OUT/c8; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
timeout 60 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "losa_gpu_runtime_tests rc=$?" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]" $O/gpu_runtime_tests.log | tee -a $O/summary.txt
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 devbin/losa_gpu_runtime_tests --gtest_filter='GpuRuntime.DenseMatchesCpu:GpuRuntime.LosaMatchesCpuReplayingItsChoices' --gtest_brief=1 > $O/sanitizer_runtime_memcheck.log 2>&1
echo "runtime memcheck rc=$? $(grep -E 'ERROR SUMMARY' $O/sanitizer_runtime_memcheck.log | tail -1)" | tee -a $O/summary.txt
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --reps 30"
BL="bench --lengths 65536 --blocks 4 32 --budgets 256 --k-active 1 4 --modes dense losa --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 20"
for i in 1 2; do
  timeout 90 devbin/main/losa $AB --json $O/ks_ab_main_$i.json > $O/ks_ab_main_$i.log 2>&1; echo "main $i rc=$?" >> $O/summary.txt
  timeout 90 devbin/losa $AB --json $O/ks_ab_new_$i.json > $O/ks_ab_new_$i.log 2>&1; echo "new $i rc=$?" >> $O/summary.txt
done
timeout 80 devbin/main/losa $BL --json $O/ks_blocks_main.json > $O/ks_blocks_main.log 2>&1; echo "blocks main rc=$?" >> $O/summary.txt
timeout 80 devbin/losa $BL --json $O/ks_blocks_new.json > $O/ks_blocks_new.log 2>&1; echo "blocks new rc=$?" >> $O/summary.txt
BM="bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 --modes dense losa --bounds8 --reps 4"
timeout 100 devbin/losa $BM --json $O/bench_model_new.json > $O/bench_model_new.log 2>&1; echo "bm new rc=$?" >> $O/summary.txt
cd $OUT && tar czf c8.tgz c8 && rm -rf c8
