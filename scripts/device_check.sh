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
"$bin/losa_gpu_tests" --gtest_filter="$filter" > "$OUT/gpu_tests.log" 2>&1; echo "gpu tests rc=$?" | tee -a "$OUT/summary.txt"
grep -E "^\[  (PASSED|FAILED|SKIPPED) \]|tests? from .* ran" "$OUT/gpu_tests.log" | tail -5 | tee -a "$OUT/summary.txt"
grep -E "FAILED|Failure|error" "$OUT/gpu_tests.log" | head -60
[ "${LOSA_SKIP_SANITIZER:-0}" = 1 ] && exit 0
# The largest prefixes add length, not code paths; they are left out of the sanitizer runs.
small="$filter-*L12000*:*L4100*:*L1000_*:*L9000*:*L3000*:*GpuSmallMemory*"
for tool in memcheck racecheck; do
  timeout ${LOSA_SANITIZER_TIMEOUT:-900} compute-sanitizer --tool $tool --error-exitcode 9 "$bin/losa_gpu_tests" \
    --gtest_filter="$small" --gtest_brief=1 > "$OUT/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1)" | tee -a "$OUT/summary.txt"
done
