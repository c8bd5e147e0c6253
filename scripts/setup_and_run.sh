#!/usr/bin/env bash
# One command for a newcomer: fetches what is missing, builds, and runs the main job (the demo of
# every attention mode on the built-in synthetic workload; on the GPU too where there is one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_deps.sh
build=${LOSA_BUILD_DIR:-build}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release ${LOSA_CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)" --target losa
"$build/tools/losa" "$@"
