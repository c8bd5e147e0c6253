#!/usr/bin/env bash
# Session 19, call 5 (issue 8): the o projection's weights prefetched into the L2 on a branch
# beside each layer's attention (cp.async.bulk.prefetch.L2, evict-last: devbin/losa; evict-normal:
# devbin/normal/losa), against d81ac55 (devbin/main/losa): the runtime tests and memcheck, then
# the 8B model step at 4 x 64K and 1 x 64K with --stages, the three binaries in turn.
set -u
O=$OUT/c5; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s); timeout 100 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
start=$(date +%s); timeout 100 compute-sanitizer --tool memcheck devbin/losa_gpu_runtime_tests \
  --gtest_filter='GpuRuntime.StageHook*:GpuRuntime.GraphReplay*:GpuRuntime.LosaMatchesCpu*' > $O/memcheck.log 2>&1; note memcheck $?
for b in last main normal; do
  bin=devbin/losa; [ $b = main ] && bin=devbin/main/losa; [ $b = normal ] && bin=devbin/normal/losa
  start=$(date +%s)
  timeout 150 $bin bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 1x65536 \
    --modes dense losa --bounds8 --reps 4 --stages --json $O/model_step_$b.json > $O/model_step_$b.txt 2>&1
  note "model_step_$b" $?
done
cat $O/summary.txt; grep -h 'ERROR SUMMARY\|PASSED\|FAILED  \]' $O/*.log | sort | uniq -c | head
for b in last main normal; do echo "== $b"; grep -E '^[0-9]x' $O/model_step_$b.txt; grep -E 'stages' $O/model_step_$b.txt | sed 's/.*\( o [0-9.]*\).*\(GPU total.*\)/\1 \2/'; done
cd $OUT && tar czf c5.tgz c5 && rm -rf c5
