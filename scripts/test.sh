#!/usr/bin/env bash
# Builds everything and runs every test. Without a GPU the GPU tests show as skipped.
# CI sets LOSA_CUDA_ARCHS=90a to build the CUDA code for one architecture only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_deps.sh --tests  # GoogleTest too, where the system lacks it
scripts/configure.sh -DLOSA_TESTS=ON -DLOSA_CUDA_ARCHS="${LOSA_CUDA_ARCHS:-90a;80;86;89}"
build=${LOSA_BUILD_DIR:-build}
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" ${LOSA_CTEST_ARGS:-}
