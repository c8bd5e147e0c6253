#!/usr/bin/env bash
# One command for a newcomer: fetches what is missing, builds, and runs the main job: `losa demo`,
# the shipped model (models/losa-tasks-6l) decoding one long-context prompt per task in every
# attention mode (32K tokens on a GPU where there is one, 1K on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/configure.sh
build=${LOSA_BUILD_DIR:-build}
cmake --build "$build" -j "$(nproc)" --target losa
"$build/tools/losa" "$@"
