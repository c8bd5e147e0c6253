#!/usr/bin/env bash
# Session 18, call 2 (issue 7): why the first filter (v1: the floor the least of the warps' m-th
# thread maxima) made the top-k slower. The second filter (v2, the k-th largest thread maximum):
# its tests, then main / v1 / v2 on the single 64K step, and ncu of the top-k kernel of each
# (full set, and the SASS-level stall samples of main and v2).
set -u
O=$OUT/c2; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
timeout 60 devbin/losa_gpu_tests --gtest_filter='GpuSelect.*' > $O/topk_tests.log 2>&1
echo "topk tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' $O/topk_tests.log | tr '\n' ' ') $(( $(date +%s) - start )) s" >> $O/summary.txt
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes quest losa --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 40"
for v in main v1 v2 main v2; do
  b=devbin/$v/losa; [ $v = v2 ] && b=devbin/losa
  timeout 40 $b $AB --json $O/ab_$v.json >> $O/ab_$v.txt 2>&1
  echo "bench $v rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
done
for v in main v1 v2; do
  b=devbin/$v/losa; [ $v = v2 ] && b=devbin/losa
  timeout 100 ncu --nvtx --nvtx-include "single losa b=256 k=4/" --clock-control none --set full --import-source yes \
    -k regex:"topk" --launch-count 1 -o $O/topk_$v $b bench --lengths 65536 --blocks 16 --budgets 256 \
    --k-active 4 --modes losa --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 2 > $O/ncu_run_$v.txt 2>&1
  echo "ncu $v rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
  ncu -i $O/topk_$v.ncu-rep --page details > $O/ncu_topk_$v.txt 2>&1
  ncu -i $O/topk_$v.ncu-rep --page raw --csv > $O/ncu_raw_$v.csv 2>&1
  [ $v != v1 ] && ncu -i $O/topk_$v.ncu-rep --page source --csv --print-source sass > $O/ncu_sass_$v.csv 2>&1
  echo "ncu export $v rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
done
rm -f $O/*.ncu-rep
cat $O/summary.txt
for v in main v1 v2; do echo "== $v"; grep -E "losa b=256 k=(1|4)  |quest b=256  |stages of (losa b=256 k=4|quest)" $O/ab_$v.txt; grep -E "Duration|Executed Instructions  |Warp Cycles Per Issued|Registers Per" $O/ncu_topk_$v.txt; done
cd $OUT && tar czf c2.tgz c2 && rm -rf c2 && ls -la
