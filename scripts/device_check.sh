#!/usr/bin/env bash
# On the lent GPU machine: runs every test binary, then compute-sanitizer memcheck and racecheck
# over the GPU tests (small cases: the sanitizers slow kernels 10-100x), and writes logs and a
# summary under $OUT. Binaries come prebuilt in devbin/ (scripts/build_devbin.sh) so that no
# device time goes to compiling.
set -uo pipefail
OUT=${OUT:-/tmp/losa-out}/check
mkdir -p "$OUT"
bin=${LOSA_DEVBIN:-devbin}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
"$bin/losa_cpu_tests" --gtest_brief=1 > "$OUT/cpu_tests.log" 2>&1; echo "cpu tests rc=$?" | tee -a "$OUT/summary.txt"
"$bin/losa_gpu_tests" > "$OUT/gpu_tests.log" 2>&1; echo "gpu tests rc=$?" | tee -a "$OUT/summary.txt"
grep -E "^\[  (PASSED|FAILED|SKIPPED) \]|tests? from .* ran" "$OUT/gpu_tests.log" | tail -5 | tee -a "$OUT/summary.txt"
grep -E "FAILED|Failure|error" "$OUT/gpu_tests.log" | head -40
small='-*L12000*:*L4100*:*L1000_*:*L9000*:*L3000*'
for tool in memcheck racecheck; do
  compute-sanitizer --tool $tool --error-exitcode 9 "$bin/losa_gpu_tests" --gtest_filter="$small" --gtest_brief=1 \
    > "$OUT/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1)" | tee -a "$OUT/summary.txt"
done
