#!/usr/bin/env bash
# Session 18, call 4 (issues 7, 8): v4 = v3 with the filter's two rank loops unrolled by 8 (ncu of
# v3: 18% of the samples were warps at the barrier after the candidates' ranking). The GPU suites
# and sanitizers on v4 (the landing candidate); main / v3 / v4 on the single 64K step; the 8B model
# step at 4 x 64K for main and v4.
set -u
O=$OUT/c4; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 0 --model-layers 0 --reps 40"
for v in main v3 v4 main v3 v4; do
  b=devbin/$v/losa; [ $v = v4 ] && b=devbin/losa
  timeout 40 $b $AB --json $O/ab_$v.json >> $O/ab_$v.txt 2>&1
  echo "bench $v rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
done
M="bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 --modes dense losa --bounds8 --reps 4"
for v in v4 main; do
  b=devbin/losa; [ $v = main ] && b=devbin/main/losa
  timeout 100 $b $M --json $O/model_step_$v.json > $O/model_step_$v.txt 2>&1
  echo "model step $v rc=$? $(( $(date +%s) - start )) s $(grep -E '^4x65536' $O/model_step_$v.txt | tr -s ' ' | tr '\n' ';')" >> $O/summary.txt
done
timeout 40 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "gpu runtime tests rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
timeout 250 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; echo "gpu tests rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
for tool in memcheck racecheck; do
  f='GpuSelect.*:*Quest*:GpuBatch.Losa*:-*L12000*:*L4100*:*L9000*:*L3000*'
  [ $tool = racecheck ] && f='GpuSelect.*'
  left=$(( 560 - ($(date +%s) - start) ))
  [ $left -gt 15 ] && timeout $left compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$f" --gtest_brief=1 > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1) $(( $(date +%s) - start )) s" >> $O/summary.txt
done
cat $O/summary.txt; grep -E "^\[  (PASSED|FAILED)|^\[  FAILED" $O/gpu_tests.log $O/gpu_runtime_tests.log | tail -8
for v in main v3 v4; do echo "== $v"; grep -E "losa b=256 k=(1|4)  |quest b=256  |stages of losa b=256 k=4 " $O/ab_$v.txt; done
cd $OUT && tar czf c4.tgz c4 && rm -rf c4 && ls -la
