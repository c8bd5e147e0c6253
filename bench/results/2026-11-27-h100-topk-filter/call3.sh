#!/usr/bin/env bash
# Session 18, call 3 (issues 7, 8): the third filter (v3: the floor from the warps' top-ceil(k/4)
# maxima, a quarter of v2's merge). Its tests; main / v3 alternating on the single 64K step and the
# 8 x 32K batch; ncu of v3's top-k (SASS stall samples); and, if v3's top-k stage is at least 1 us
# under main's, the 8B model step at 4 x 64K for both (issue 8's ratio).
set -u
O=$OUT/c3; mkdir -p $O
tar xJf devpack/devbin.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
timeout 60 devbin/losa_gpu_tests --gtest_filter='GpuSelect.*' > $O/topk_tests.log 2>&1
echo "topk tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' $O/topk_tests.log | tr '\n' ' ') $(( $(date +%s) - start )) s" >> $O/summary.txt
AB="bench --lengths 65536 --blocks 16 --budgets 256 --k-active 1 4 --modes dense quest losa --no-curve --batch-seqs 8 --model-layers 0 --no-bounds8 --reps 30"
for round in 1 2; do
  for v in main v3; do
    b=devbin/losa; [ $v = main ] && b=devbin/main/losa
    timeout 70 $b $AB --json $O/ab_${v}_$round.json > $O/ab_${v}_$round.txt 2>&1
    echo "bench $v $round rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
  done
done
timeout 100 ncu --nvtx --nvtx-include "single losa b=256 k=4/" --clock-control none --set full --import-source yes \
  -k regex:"topk" --launch-count 1 -o $O/topk_v3 devbin/losa bench --lengths 65536 --blocks 16 --budgets 256 \
  --k-active 4 --modes losa --no-curve --batch-seqs 0 --model-layers 0 --no-bounds8 --reps 2 > $O/ncu_run_v3.txt 2>&1
ncu -i $O/topk_v3.ncu-rep --page details > $O/ncu_topk_v3.txt 2>&1
ncu -i $O/topk_v3.ncu-rep --page source --csv --print-source sass > $O/ncu_sass_v3.csv 2>&1
rm -f $O/*.ncu-rep
echo "ncu rc=$? $(( $(date +%s) - start )) s" >> $O/summary.txt
topk() { grep -h "stages of losa b=256 k=4 " $O/ab_$1_*.txt | sed 's/.*topk \([0-9.]*\).*/\1/' | awk '{s+=$1} END {print s/NR}'; }
tm=$(topk main); tv=$(topk v3); echo "topk stage main $tm v3 $tv" >> $O/summary.txt
if awk "BEGIN {exit !($tm - $tv >= 1.0)}"; then
  M="bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 --modes dense losa --bounds8 --reps 4"
  for v in v3 main; do
    b=devbin/losa; [ $v = main ] && b=devbin/main/losa
    timeout 110 $b $M --json $O/model_step_$v.json > $O/model_step_$v.txt 2>&1
    echo "model step $v rc=$? $(( $(date +%s) - start )) s $(grep -E '^4x65536' $O/model_step_$v.txt | tr -s ' ' | tr '\n' ';')" >> $O/summary.txt
  done
fi
cat $O/summary.txt
for f in $O/ab_*_1.txt $O/ab_*_2.txt; do echo "== $f"; grep -E "losa b=256 k=(1|4)  |quest b=256  |stages of losa b=256 k=4 " $f; done
grep -E "Duration|Executed Instructions  |Warp Cycles Per Issued" $O/ncu_topk_v3.txt
cd $OUT && tar czf c3.tgz c3 && rm -rf c3 && ls -la
