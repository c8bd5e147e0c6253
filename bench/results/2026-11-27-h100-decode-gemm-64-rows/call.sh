#!/usr/bin/env bash
# Session 15, GEMM call (issue 8): the decode-shape kernel's 32- and 64-row instances: GPU runtime
# tests, the instance sweep at 16 and 64 rows, the 8B model step at 4 x 64K with the 64-row GEMMs on
# cuBLAS (default) and on the decode kernel (LOSA_GEMM=decode), sanitizers over the GEMM tests.
set -u
O=$OUT/g; mkdir -p $O devbin; tar xJf devpack/bins.txz -C devbin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $O/gpu.txt
export LOSA_FIXTURE_DIR=$PWD/tests/fixtures
start=$(date +%s)
timeout 120 devbin/losa_gpu_runtime_tests > $O/gpu_runtime_tests.log 2>&1; echo "losa_gpu_runtime_tests rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]|tests? from .* ran|^\[  FAILED" $O/gpu_runtime_tests.log | tail -6 | tee -a $O/summary.txt
# The same suite with every GEMM of up to 64 rows on the decode kernel (the forward tests' batches).
LOSA_GEMM=decode timeout 90 devbin/losa_gpu_runtime_tests --gtest_filter='-GpuSkinnyGemm.*' > $O/gpu_runtime_tests_decode.log 2>&1; echo "losa_gpu_runtime_tests LOSA_GEMM=decode rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
grep -E "^\[  (PASSED|FAILED) \]|tests? from .* ran|^\[  FAILED" $O/gpu_runtime_tests_decode.log | tail -6 | tee -a $O/summary.txt
timeout 60 devbin/perturbed/losa_gpu_runtime_tests --gtest_filter='GpuSkinnyGemm.*' --gtest_brief=1 > $O/perturbed.log 2>&1; echo "perturbed (the staged split sum drops its last split; must fail) rc=$? failed_tests=$(grep -c '^\[  FAILED  \] [A-Z]' $O/perturbed.log)" | tee -a $O/summary.txt
timeout 150 devbin/losa bench-model --gemm-sweep --random-weights tests/fixtures/sdar-8b-chat/config.json --block-size 16 \
  --json $O/gemm_sweep.json > $O/gemm_sweep.txt 2>&1; echo "gemm sweep rc=$? $(( $(date +%s) - start )) s" | tee -a $O/summary.txt
M="bench-model --random-weights tests/fixtures/sdar-8b-chat/config.json --prefill 8192 --batches 4x65536 --modes dense losa --bounds8 --reps 4"
for g in decode default; do
  if [ $g = decode ]; then export LOSA_GEMM=decode; else unset LOSA_GEMM; fi
  timeout 110 devbin/losa $M --json $O/model_step_$g.json > $O/model_step_$g.txt 2>&1
  echo "model step $g rc=$? $(( $(date +%s) - start )) s $(grep -E '^4x65536' $O/model_step_$g.txt | tr -s ' ' | tr '\n' ';')" | tee -a $O/summary.txt
done
unset LOSA_GEMM
for tool in memcheck racecheck; do
  left=$(( 585 - ($(date +%s) - start) )); [ $left -lt 20 ] && break
  timeout $(( left / 2 )) compute-sanitizer --tool $tool --error-exitcode 9 devbin/losa_gpu_runtime_tests --gtest_filter='GpuSkinnyGemm.*' > $O/sanitizer_$tool.log 2>&1
  echo "sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/sanitizer_$tool.log | tail -1) $(grep -E 'tests? from .* ran' $O/sanitizer_$tool.log | tail -1)" | tee -a $O/summary.txt
done
cd $OUT && tar czf g.tgz g && rm -rf g && ls -la
