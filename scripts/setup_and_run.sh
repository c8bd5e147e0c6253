#!/usr/bin/env bash
# One command for a newcomer: fetches what is missing, builds, and runs the main job (the demo of
# every attention mode on the built-in synthetic workload; on the GPU too where there is one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/configure.sh
build=${LOSA_BUILD_DIR:-build}
cmake --build "$build" -j "$(nproc)" --target losa
"$build/tools/losa" "$@"
