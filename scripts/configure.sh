#!/usr/bin/env bash
# Fetches missing header-only dependencies and configures the build folder ($LOSA_BUILD_DIR,
# default build/) with any extra arguments. Shared by setup_and_run.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_deps.sh
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "${LOSA_BUILD_DIR:-build}" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$@" ${LOSA_CMAKE_ARGS:-}
