#!/usr/bin/env bash
# Session 19, call 2 (issue 8): the step's small kernels made latency-lean (RMSNorm with its row
# in registers by float4 loads, SwiGLU by 16-byte loads, greedy in one online-softmax pass, with
# call 1's q/k-norm + RoPE): their kernel tests, three planted defects that must fail them,
# memcheck and racecheck; the 8B model step at 4 x 64K on main (+ hook) and the candidate.
set -u
O=$OUT/c2; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s); timeout 150 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
for d in ties_to_highest norm_drops_zw silu_swaps_halves; do
  start=$(date +%s); timeout 60 devbin/perturbed/$d --gtest_filter='GpuModelKernels.*' > $O/perturbed_$d.log 2>&1; note "perturbed_$d(must fail)" $?
done
start=$(date +%s); timeout 150 compute-sanitizer --tool memcheck devbin/losa_gpu_runtime_tests \
  --gtest_filter='GpuModelKernels.*:GpuRuntime.StageHook*:GpuRuntime.LosaMatchesCpu*' > $O/memcheck.log 2>&1; note memcheck $?
start=$(date +%s); timeout 100 compute-sanitizer --tool racecheck devbin/losa_gpu_runtime_tests \
  --gtest_filter='GpuModelKernels.*' > $O/racecheck.log 2>&1; note racecheck $?
for b in cand main; do
  bin=devbin/losa; [ $b = main ] && bin=devbin/main/losa
  start=$(date +%s)
  timeout 150 $bin bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 \
    --modes dense losa --bounds8 --reps 4 --stages --json $O/model_step_$b.json > $O/model_step_$b.txt 2>&1
  note "model_step_$b" $?
done
cat $O/summary.txt; grep -h 'ERROR SUMMARY\|RACECHECK SUMMARY\|PASSED\|FAILED  \]' $O/*.log | sort | uniq -c | head -20
for b in cand main; do tail -8 $O/model_step_$b.txt | cut -c1-1200; done
cd $OUT && tar czf c2.tgz c2 && rm -rf c2
