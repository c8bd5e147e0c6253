#!/usr/bin/env bash
# Session 20, call 2 (issue 7, dense at every block size): the wgmma path of the unmasked
# attention. Its tests (both paths forced, every CTA shape; a planted wrong V stride must fail),
# memcheck and racecheck of them, the runtime tests (prefill runs on wgmma), then the same binary
# with --attention-mma sync (main's path) and auto (wgmma) alternating: dense at B = 4..64,
# 32K and 64K; the single 64K step and the 8 x 32K batch; ncu of the B = 32 dense kernel.
set -u
O=$OUT/c2; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
note() { echo "$1 rc=$2 $(( $(date +%s) - start )) s" >> $O/summary.txt; }
start=$(date +%s); timeout 90 devbin/losa_gpu_tests --gtest_filter='GpuAttentionMma.*' > $O/mma_tests.log 2>&1; note mma_tests $?
start=$(date +%s); timeout 60 devbin/perturbed/wgmma_v_stride_gpu_tests --gtest_filter='GpuAttentionMma.BothPaths*' > $O/perturbed_v_stride.log 2>&1; note "perturbed(must fail)" $?
start=$(date +%s); timeout 40 devbin/losa_gpu_runtime_tests > $O/runtime_tests.log 2>&1; note runtime_tests $?
DB="bench --lengths 32768 65536 --blocks 4 16 32 64 --budgets 256 --k-active 4 --modes dense --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 30"
for v in sync auto sync auto; do
  start=$(date +%s); timeout 60 devbin/losa $DB --attention-mma $v --json $O/dense_$v.json >> $O/dense_$v.txt 2>&1; note "dense $v" $?
done
(cd $OUT && tar czf c2a.tgz c2)
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --no-bounds8 --reps 30"
for v in sync auto; do
  start=$(date +%s); timeout 80 devbin/losa $AB --attention-mma $v --json $O/ab_$v.json >> $O/ab_$v.txt 2>&1; note "ab $v" $?
done
start=$(date +%s); timeout 100 ncu --nvtx --nvtx-include "single dense/" --clock-control none --set full --import-source yes \
  -k regex:"paged_attention" --launch-count 1 -o $O/dense32_wgmma devbin/losa bench --lengths 65536 --blocks 32 --budgets 256 \
  --k-active 4 --modes dense --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 2 > $O/ncu_run.txt 2>&1; note ncu $?
ncu -i $O/dense32_wgmma.ncu-rep --page details > $O/ncu_dense32_wgmma.txt 2>&1
ncu -i $O/dense32_wgmma.ncu-rep --page source --csv --print-source sass > $O/ncu_sass_dense32_wgmma.csv 2>&1
(cd $OUT && tar czf c2b.tgz c2)
start=$(date +%s); timeout 120 compute-sanitizer --tool memcheck devbin/losa_gpu_tests --gtest_filter='GpuAttentionMma.*' > $O/memcheck.log 2>&1; note memcheck $?
start=$(date +%s); timeout 100 compute-sanitizer --tool racecheck devbin/losa_gpu_tests --gtest_filter='GpuAttentionMma.WgmmaBatch*' > $O/racecheck.log 2>&1; note racecheck $?
cat $O/summary.txt; grep -h 'ERROR SUMMARY\|RACECHECK SUMMARY\|PASSED\|FAILED  \]\|NOTE' $O/*.log | sort | uniq -c | head -20
grep -E "Failure|max_err|Expected|Which is|trace" $O/mma_tests.log | head -20
for v in sync auto; do grep -E '^ +[0-9]+ +[0-9]+ +1 +dense' $O/dense_$v.txt | cut -c1-120; done
for v in sync auto; do grep -E 'losa b=256|quest|dense' $O/ab_$v.txt | cut -c1-130; done
cd $OUT && tar czf c2.tgz c2 && rm -rf c2 c2a.tgz c2b.tgz
