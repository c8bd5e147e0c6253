#!/usr/bin/env bash
# Session 15, call 1: the model step at 4 x 64K on the H100 (issue 8), LoSA's active-set sweep on the
# shipped model (issue 10), the owed racecheck of 046f849 and its cut-off test (issue 7).
set -u
O=$OUT/v; mkdir -p $O devbin; tar xJf devpack/bins.txz -C devbin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
timeout 100 devbin/losa bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 \
  --batches 4x65536 --modes dense losa --bounds8 --reps 4 --json $O/model_step.json > $O/model_step.txt 2>&1
echo "bench-model rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
timeout 200 devbin/losa eval --model models/losa-tasks-6l --device cuda --lengths 4096 16384 --samples 16 \
  --modes dense losa --budgets 256 --k-active 0 4 8 --tau 0.5 0.75 0.9 --json $O/eval.json > $O/eval.txt 2>&1
echo "eval rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
timeout 60 devbin/losa_gpu_tests --gtest_filter='AwkwardSizes/GpuModeTest.SparsedUnion/*' --gtest_brief=1 > $O/sparsed_union.log 2>&1
echo "SparsedUnion rc=$? $(grep -E 'tests? from .* ran|PASSED|FAILED' $O/sparsed_union.log | tail -3 | tr '\n' ' ')" | tee -a $O/summary.txt
left=$(( 575 - ($(date +%s) - start) ))
F='*Own*:*QuestBounds8*:*LosaBounds8*:GpuAttentionStages.*:GpuBatch.*:GpuInvariants.*'
S="$F-*L12000*:*L4100*:*L1000_*:*L9000*:*L3000*"
timeout $left compute-sanitizer --tool racecheck --error-exitcode 9 devbin/losa_gpu_tests --gtest_filter="$S" > $O/sanitizer_racecheck.log 2>&1
echo "racecheck rc=$? (limit $left s) $(grep -E 'RACECHECK SUMMARY' $O/sanitizer_racecheck.log | tail -1) $(grep -E 'tests? from .* ran' $O/sanitizer_racecheck.log | tail -1)" | tee -a $O/summary.txt
grep -c '^\[       OK' $O/sanitizer_racecheck.log | sed 's/^/racecheck tests ok: /' | tee -a $O/summary.txt
cd $OUT && tar czf v.tgz v && rm -rf v && ls -la
