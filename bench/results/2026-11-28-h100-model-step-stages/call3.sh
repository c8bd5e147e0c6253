#!/usr/bin/env bash
# Session 19, call 3 (issue 8): the step's small kernels launched with PDL (each waits for its
# predecessor at its top; launch.cuh's launch_kernel_with for plain-argument kernels): the
# runtime tests, a planted defect (RMSNorm without its wait) that must fail the new PDL test,
# memcheck, the whole GPU suite (every engine launch now goes through launch_kernel_with); the
# 8B model step at 4 x 64K on d81ac55 (main) and the candidate, alternating.
set -u
O=$OUT/c3; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s); timeout 100 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
start=$(date +%s); timeout 60 devbin/perturbed/rms_norm_no_wait --gtest_filter='GpuModelKernels.*' > $O/perturbed_rms_norm_no_wait.log 2>&1; note "perturbed_rms_norm_no_wait(must fail)" $?
start=$(date +%s); timeout 100 compute-sanitizer --tool memcheck devbin/losa_gpu_runtime_tests \
  --gtest_filter='GpuModelKernels.*:GpuRuntime.StageHook*:GpuRuntime.BatchEquals*' > $O/memcheck.log 2>&1; note memcheck $?
for b in cand main; do
  bin=devbin/losa; [ $b = main ] && bin=devbin/main/losa
  start=$(date +%s)
  timeout 120 $bin bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 \
    --modes dense losa --bounds8 --reps 4 --json $O/model_step_$b.json > $O/model_step_$b.txt 2>&1
  note "model_step_$b" $?
done
start=$(date +%s); timeout 260 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; note gpu_tests $?
cat $O/summary.txt; grep -h 'ERROR SUMMARY\|PASSED\|FAILED  \]' $O/*.log | sort | uniq -c | head -20
for b in cand main; do tail -5 $O/model_step_$b.txt; done
cd $OUT && tar czf c3.tgz c3 && rm -rf c3
