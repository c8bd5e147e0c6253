#!/usr/bin/env bash
# Session 16, fifth call. Issue 8: the 512-byte-stage x-staged 64-row GEMM
# (staged-x-gemm-512b-rows.patch; bp/ holds losa and losa_gpu_runtime_tests built with it applied):
# its tests, the instance sweep at 16 and 64 rows, the 8B model step at 4 x 64K with the 64-row
# GEMMs on it (LOSA_GEMM=decode) and on cuBLAS. Issue 10: the step-8,888 checkpoint (.devp/model)
# at 8K in every mode, LoSA tau 0.75 at every length (bench/results/2026-11-27-h100-answer-ends/call5).
set -u
O=$OUT/q; mkdir -p $O bp; tar xJf .devp/bins.txz -C bp
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
timeout 60 .train/losa eval --model .devp/model --device cuda --lengths 8192 --samples 16 --block-size 16 \
  --budgets 128 256 512 1024 --k-active 0 --tau 0.5 --json $O/eval_8k.json > $O/eval_8k.txt 2>&1
echo "eval 8k rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
timeout 100 .train/losa eval --model .devp/model --device cuda --lengths 4096 8192 16384 32768 --samples 16 --block-size 16 \
  --modes losa --budgets 128 256 512 1024 --tau 0.75 --json $O/eval_tau75.json > $O/eval_tau75.txt 2>&1
echo "eval tau 0.75 rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
timeout 60 bp/losa_gpu_runtime_tests --gtest_filter='GpuSkinnyGemm.*' > $O/skinny_tests.log 2>&1; echo "GpuSkinnyGemm rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]|tests? from .* ran|^\[  FAILED" $O/skinny_tests.log | tail -6 | tee -a $O/summary.txt
timeout 120 bp/losa bench-model --gemm-sweep --random-weights tests/fixtures/sdar-8b-chat/config.json --block-size 16 \
  --json $O/gemm_sweep.json > $O/gemm_sweep.txt 2>&1; echo "gemm sweep rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
M="bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 --modes dense losa --bounds8 --reps 4"
for g in decode default; do
  left=$(( 560 - ($(date +%s) - start) )); [ $left -lt 60 ] && break
  if [ $g = decode ]; then export LOSA_GEMM=decode; else unset LOSA_GEMM; fi
  timeout $(( left < 110 ? left : 110 )) bp/losa $M --json $O/model_step_$g.json > $O/model_step_$g.txt 2>&1
  echo "model step $g rc=$? $(( $(date +%s) - start )) s $(grep -E '^4x65536' $O/model_step_$g.txt | tr -s ' ' | tr '\n' ';')" | tee -a $O/summary.txt
done
unset LOSA_GEMM
left=$(( 585 - ($(date +%s) - start) ))
[ $left -gt 20 ] && timeout $left compute-sanitizer --tool memcheck --error-exitcode 9 bp/losa_gpu_runtime_tests --gtest_filter='GpuSkinnyGemm.*' > $O/sanitizer_memcheck.log 2>&1
echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' $O/sanitizer_memcheck.log | tail -1)" | tee -a $O/summary.txt
cd $OUT && tar czf q.tgz q && rm -rf q && ls -la
