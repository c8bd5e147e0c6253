#!/usr/bin/env bash
# On the lent GPU machine: runs every test binary, then compute-sanitizer memcheck and racecheck
# over the GPU tests (small cases: the sanitizers slow kernels 10-100x), and writes logs and a
# summary under $OUT. Binaries come prebuilt in devbin/ (scripts/build_devbin.sh) so that no
# device time goes to compiling. LOSA_GPU_FILTER narrows the GPU tests (a gtest filter).
set -uo pipefail
OUT=${OUT:-/tmp/losa-out}/check
mkdir -p "$OUT"
bin=${LOSA_DEVBIN:-devbin}
filter=${LOSA_GPU_FILTER:-*}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
"$bin/losa_cpu_tests" --gtest_brief=1 > "$OUT/cpu_tests.log" 2>&1; echo "cpu tests rc=$?" | tee -a "$OUT/summary.txt"
export LOSA_FIXTURE_DIR=${LOSA_FIXTURE_DIR:-$PWD/tests/fixtures}
"$bin/losa_runtime_tests" --gtest_brief=1 > "$OUT/runtime_tests.log" 2>&1; echo "runtime cpu tests rc=$?" | tee -a "$OUT/summary.txt"
for suite in losa_gpu_tests losa_gpu_runtime_tests; do
  "$bin/$suite" --gtest_filter="$filter" > "$OUT/$suite.log" 2>&1; echo "$suite rc=$?" | tee -a "$OUT/summary.txt"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) \]|tests? from .* ran" "$OUT/$suite.log" | tail -5 | tee -a "$OUT/summary.txt"
  grep -E "FAILED|Failure|error" "$OUT/$suite.log" | head -40
done
[ "${LOSA_SKIP_SANITIZER:-0}" = 1 ] && exit 0
# The largest prefixes add length, not code paths; they are left out of the sanitizer runs.
small="$filter-*L12000*:*L4100*:*L1000_*:*L9000*:*L3000*:*GpuAttentionStages*"
for tool in memcheck racecheck; do
  timeout ${LOSA_SANITIZER_TIMEOUT:-900} compute-sanitizer --tool $tool --error-exitcode 9 "$bin/losa_gpu_tests" \
    --gtest_filter="$small" --gtest_brief=1 > "$OUT/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1)" | tee -a "$OUT/summary.txt"
done
# The model runtime on the GPU (cuBLAS and the decode-shape GEMM included): memcheck over the
# forward-vs-CPU tests and the GEMM's own; racecheck over the GEMM (shared-memory reduction).
runtime_filter="GpuRuntime.DenseMatchesCpu:GpuRuntime.LosaMatchesCpuReplayingItsChoices:GpuRuntime.SparsedMatchesCpuReplayingItsChoices:GpuSkinnyGemm.*"
timeout ${LOSA_SANITIZER_TIMEOUT:-900} compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/losa_gpu_runtime_tests" \
  --gtest_filter="$runtime_filter" --gtest_brief=1 > "$OUT/sanitizer_runtime_memcheck.log" 2>&1
echo "compute-sanitizer runtime memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer_runtime_memcheck.log" | tail -1)" | tee -a "$OUT/summary.txt"
timeout ${LOSA_SANITIZER_TIMEOUT:-900} compute-sanitizer --tool racecheck --error-exitcode 9 "$bin/losa_gpu_runtime_tests" \
  --gtest_filter="GpuSkinnyGemm.*" --gtest_brief=1 > "$OUT/sanitizer_runtime_racecheck.log" 2>&1
echo "compute-sanitizer runtime racecheck rc=$? $(grep -E 'RACECHECK SUMMARY' "$OUT/sanitizer_runtime_racecheck.log" | tail -1)" | tee -a "$OUT/summary.txt"
