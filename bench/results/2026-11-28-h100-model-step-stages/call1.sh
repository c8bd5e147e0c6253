#!/usr/bin/env bash
# Session 19, call 1 (issues 7, 8): the GpuSelect tests the eighteenth round owed; the new
# q/k-norm + RoPE kernel (one warp a head, the row's angles once per CTA) under its kernel test,
# a planted defect (fp32 angles) that must fail it, the stage hook's test, memcheck; then the 8B
# model step at 4 x 64K broken down by kernel group (--stages) on main (+ the hook, old RoPE
# kernel: devbin/main/losa) and on the candidate (devbin/losa).
set -u
O=$OUT/c1; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s); timeout 120 devbin/losa_gpu_tests --gtest_filter='GpuSelect.*' > $O/gpuselect.log 2>&1; note gpuselect $?
start=$(date +%s); timeout 150 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
start=$(date +%s); timeout 60 devbin/perturbed/fp32_angle_tests --gtest_filter='GpuModelKernels.*' > $O/perturbed_fp32_angle.log 2>&1; note "perturbed_fp32_angle(must fail)" $?
start=$(date +%s); timeout 150 compute-sanitizer --tool memcheck devbin/losa_gpu_runtime_tests \
  --gtest_filter='GpuModelKernels.*:GpuRuntime.StageHook*:GpuRuntime.DenseMatchesCpu' > $O/memcheck.log 2>&1; note memcheck $?
for b in main cand; do
  bin=devbin/losa; [ $b = main ] && bin=devbin/main/losa
  start=$(date +%s)
  timeout 150 $bin bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 \
    --modes dense losa --bounds8 --reps 4 --stages --json $O/model_step_$b.json > $O/model_step_$b.txt 2>&1
  note "model_step_$b" $?
done
cat $O/summary.txt; grep -h 'ERROR SUMMARY\|PASSED\|FAILED' $O/*.log | head -20
for b in main cand; do tail -8 $O/model_step_$b.txt; done
cd $OUT && tar czf c1.tgz c1 && rm -rf c1
