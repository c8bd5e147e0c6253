#!/usr/bin/env bash
# Prints the SASS of one kernel of the sm_90a dev build (scripts/build_devbin.sh), here on the CPU
# machine, whose CUDA toolkit lacks cuobjdump: NVIDIA's pip wheels of cuobjdump and nvdisasm are
# installed once into .sass-tools/ (ignored by git).
#   scripts/sass.sh OBJECT KERNEL_SUBSTRING   e.g. scripts/sass.sh paged_attention 'Li128ELi2ELi8ELb0ELb1E'
# OBJECT names a file of build-dev/src/cuda (paged_attention for paged_attention.cu.o).
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.sass-tools
if [ ! -x "$tools/bin/cuobjdump" ]; then
  python3 -m venv "$tools/venv" >/dev/null
  "$tools/venv/bin/pip" install -q nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
  mkdir -p "$tools/bin"
  for t in cuobjdump nvdisasm; do ln -sf "$(find "$PWD/$tools/venv" -name "$t" -type f | head -1)" "$tools/bin/$t"; done
fi
[ $# -eq 2 ] || { echo "usage: scripts/sass.sh OBJECT KERNEL_SUBSTRING" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && ar x "$OLDPWD/build-dev/src/cuda/liblosa_cuda.a" "$1.cu.o")
obj="$work/$1.cu.o"
"$tools/bin/cuobjdump" -sass "$obj" > "$work/all.sass"
name=$(grep -o "Function : [^ ]*$2[^ ]*" "$work/all.sass" | head -1 | cut -d' ' -f3 || true)
[ -n "$name" ] || { echo "no kernel matching '$2' in $1.cu.o" >&2; exit 1; }
"$tools/bin/cuobjdump" -sass -fun "$name" "$obj"
