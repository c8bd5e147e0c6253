#!/usr/bin/env bash
# Session 19, call 6 (issue 7; review fixes of issue 8's kernels): the top-k's grid sized to the
# rows LoSA's top-k rule can make valid (k_active x group CTAs per KV head, each looping over rows
# past its first), against 6a3399b (devbin/main/losa) on the single 64K step and the 8 x 32K
# batch; the whole GPU suite, a planted defect (one row per CTA, no loop) that must fail the new
# test, memcheck and racecheck over the selection; the runtime tests (greedy with -inf logits);
# bench-model --stages on SparseD (the replayed graph now found by its marks' times).
set -u
O=$OUT/c6; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s); timeout 60 devbin/perturbed/topk_one_row_per_cta --gtest_filter='GpuSelect.*' > $O/perturbed_topk_one_row_per_cta.log 2>&1; note "perturbed(must fail)" $?
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --no-bounds8 --reps 30"
for v in cand main; do
  b=devbin/losa; [ $v = main ] && b=devbin/main/losa
  start=$(date +%s); timeout 90 $b $AB --json $O/ab_$v.json > $O/ab_$v.txt 2>&1; note "bench $v" $?
done
start=$(date +%s); timeout 40 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
start=$(date +%s); timeout 60 devbin/losa bench-model --model models/losa-tasks-6l --prefill 4096 --batches 2x16384 \
  --modes dense losa sparsed --reps 3 --stages --json $O/stages_sparsed.json > $O/stages_sparsed.txt 2>&1; note stages_sparsed $?
start=$(date +%s); timeout 90 compute-sanitizer --tool memcheck devbin/losa_gpu_tests --gtest_filter='GpuSelect.*:GpuBatch.Losa*' > $O/memcheck.log 2>&1; note memcheck $?
start=$(date +%s); timeout 60 compute-sanitizer --tool racecheck devbin/losa_gpu_tests --gtest_filter='GpuSelect.Ctas*' > $O/racecheck.log 2>&1; note racecheck $?
(cd $OUT && tar czf c6a.tgz c6)
start=$(date +%s); timeout 190 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; note gpu_tests $?
cat $O/summary.txt; grep -h 'ERROR SUMMARY\|RACECHECK SUMMARY\|PASSED\|FAILED  \]' $O/*.log | sort | uniq -c | head -20
for v in cand main; do grep -E 'losa b=256|quest|dense|stages of losa' $O/ab_$v.txt | cut -c1-150; done
grep -E '^[0-9]x|stages of sparsed' $O/stages_sparsed.txt | cut -c1-300
cd $OUT && tar czf c6.tgz c6 && rm -rf c6 c6a.tgz
