#!/usr/bin/env bash
# Session 20, call 3 (issue 7): the attention's softmax with ex2.approx.ftz (fast_exp2) instead of
# exp2f and the running sums rescaled only when a row's maximum grows (devbin/losa), against
# d3cb2e8 (devbin/base/losa: wgmma, exp2f, rescale every tile): dense at B = 4..64 and the single
# and batch steps; then on the candidate the attention tests, the runtime tests, memcheck, and the
# whole GPU suite (owed since the wgmma commit).
set -u
O=$OUT/c3; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s); timeout 90 devbin/losa_gpu_tests --gtest_filter='GpuAttentionMma.*:GpuAttentionStages.*' > $O/mma_tests.log 2>&1; note mma_tests $?
DB="bench --lengths 32768 65536 --blocks 4 16 32 64 --budgets 256 --k-active 4 --modes dense --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 30"
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --no-bounds8 --reps 30"
for v in cand base; do
  b=devbin/losa; [ $v = base ] && b=devbin/base/losa
  start=$(date +%s); timeout 60 $b $DB --json $O/dense_$v.json > $O/dense_$v.txt 2>&1; note "dense $v" $?
  start=$(date +%s); timeout 70 $b $AB --json $O/ab_$v.json > $O/ab_$v.txt 2>&1; note "ab $v" $?
done
(cd $OUT && tar czf c3a.tgz c3)
start=$(date +%s); timeout 40 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
start=$(date +%s); timeout 60 compute-sanitizer --tool memcheck devbin/losa_gpu_tests --gtest_filter='GpuAttentionMma.Both*' > $O/memcheck.log 2>&1; note memcheck $?
start=$(date +%s); timeout 250 devbin/losa_gpu_tests > $O/gpu_tests.log 2>&1; note gpu_tests $?
cat $O/summary.txt; grep -h 'ERROR SUMMARY\|PASSED\|FAILED  \]\|NOTE' $O/*.log | sort | uniq -c | head -20
for v in cand base; do grep -E '^ +[0-9]+ +[0-9]+ +1 +dense' $O/dense_$v.txt | cut -c1-120; grep -E 'losa b=256|quest|dense' $O/ab_$v.txt | cut -c1-130; done
cd $OUT && tar czf c3.tgz c3 && rm -rf c3 c3a.tgz
