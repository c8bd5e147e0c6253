#!/usr/bin/env bash
# Optional, after scripts/fetch_flashinfer.sh: compile FlashInfer's prefill modules for the
# benchmark's one call (bf16, head dim 128, fa2 and fa3 backends, sm_90a) here, with this
# machine's nvcc, against the torch build the GPU machine has (2.11.0+cu130), into .whl/ops/ with a
# manifest.json. bench/flashinfer_baseline.py --ops-in .whl/ops then loads them instead of spending
# minutes of device time in nvcc; where the manifest does not match the GPU machine's flashinfer,
# torch or CUDA, or the GPU is not sm_90, or a module fails to load, it compiles there as usual.
#
#   scripts/prebuild_flashinfer_ops.sh [fa2 fa3]    # default both
#
# Time on this 2-core machine: fa2 about 6 min, fa3 about 25 min (10 nvcc jobs each). The venv
# (torch 2.11.0 from PyPI, whose Linux x86_64 build is +cu130 as on the GPU machine: about 4.6 GB),
# the installed wheels and FlashInfer's JIT cache stay in $FLASHINFER_PREBUILD_DIR (default
# /tmp/flashinfer-prebuild), so a second run with the same wheels recompiles nothing.
# Needs: nvcc of CUDA 13.0 (the GPU machine's; $CUDA_HOME, default /usr/local/cuda), g++, PyPI.
# What a module needs at load time (fa2's, by readelf -d / nm -D): libc10, libc10_cuda,
# libtorch_cpu and libcudart.so.13 (all loaded by torch first), libstdc++, glibc <= 2.32, and
# PyModule_Create2 (stable ABI: the Python 3.11 here serves the 3.12 there).
set -euo pipefail

cd "$(dirname "$0")/.."
BACKENDS=("$@")
[[ ${#BACKENDS[@]} -eq 0 ]] && BACKENDS=(fa2 fa3)
TORCH_VERSION=2.11.0
TORCH_EXPECT=2.11.0+cu130
STATE=${FLASHINFER_PREBUILD_DIR:-/tmp/flashinfer-prebuild}
VENV=$STATE/venv

ls .whl/flashinfer_python-*.whl >/dev/null 2>&1 || { echo "run scripts/fetch_flashinfer.sh first" >&2; exit 1; }
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
"$CUDA_HOME/bin/nvcc" --version | grep -q "release 13.0," || {
  echo "need nvcc of CUDA 13.0 at $CUDA_HOME (the GPU machine's); found: $("$CUDA_HOME/bin/nvcc" --version | tail -1)" >&2
  exit 1
}

mkdir -p "$STATE"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c "import torch, numpy; assert torch.__version__ == '$TORCH_EXPECT'" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" numpy
fi
"$VENV/bin/python" -c "import torch; v = torch.__version__; assert v == '$TORCH_EXPECT', v" || {
  echo "torch here is not $TORCH_EXPECT; the modules would not match the GPU machine's" >&2
  exit 1
}

# Reinstall the wheels only when they changed: a reinstall renews every header's mtime, and ninja
# would then recompile everything.
STAMP=$(cat .whl/*.whl | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$STATE/site.stamp" 2>/dev/null)" != "$STAMP" ]]; then
  rm -rf "$STATE/site" "$STATE/ws"
  "$VENV/bin/python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$STATE/site" .whl/*.whl
  echo "$STAMP" >"$STATE/site.stamp"
fi
export PYTHONPATH=$STATE/site FLASHINFER_WORKSPACE_BASE=$STATE/ws FLASHINFER_CUDA_ARCH_LIST=9.0
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
for b in "${BACKENDS[@]}"; do
  start=$(date +%s)
  "$VENV/bin/python" bench/flashinfer_baseline.py --build-only "$b"
  echo "$b: built in $(( $(date +%s) - start )) s"
done
# Adds to .whl/ops/ (modules of other backends there stay when their manifest matches).
"$VENV/bin/python" bench/flashinfer_baseline.py --export-only --backends "${BACKENDS[@]}" --ops-out .whl/ops
cat .whl/ops/manifest.json
du -sh .whl/ops; du -sh .whl
