#!/usr/bin/env bash
# Builds the test and tool binaries here for sm_90a and copies them into devbin/ (ignored by
# git), to be carried to the lent GPU machine (x86-64, CUDA 13, newer glibc than Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_deps.sh
cmake -S . -B build-dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOSA_CUDA=ON -DLOSA_CUDA_ARCHS=90a >/dev/null
cmake --build build-dev -j "$(nproc)"
mkdir -p devbin
cp build-dev/tools/losa build-dev/tests/losa_cpu_tests build-dev/tests/losa_gpu_tests build-dev/tests/losa_gpu_runtime_tests \
   build-dev/tests/losa_runtime_tests devbin/
grep -qx '/devbin/' .git/info/exclude || echo '/devbin/' >> .git/info/exclude
ls -la devbin
