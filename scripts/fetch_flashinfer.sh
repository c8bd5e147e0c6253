#!/usr/bin/env bash
# Fetch FlashInfer 0.3.1 (the LoSA paper's dense baseline) as wheels for the GPU machine, which has
# no network: its sdist is built here into a pure-Python py3-none-any wheel (the CUDA kernels are
# compiled by FlashInfer's JIT with nvcc at first use, on the GPU machine), and the pure-Python
# dependencies that FlashInfer declares travel beside it. Everything lands in .whl/ (ignored by git;
# name it in the run's `carry`). Needs python3 >= 3.9 with pip and venv, and PyPI.
#
#   scripts/fetch_flashinfer.sh            # -> .whl/*.whl (about 6.7 MB), then checks it
#   scripts/fetch_flashinfer.sh --no-check # skip the install check
#
# What travels, and why (flashinfer-python 0.3.1's Requires-Dist: numpy, torch, ninja, requests,
# pynvml, einops, click, tqdm, tabulate, packaging>=24.2, nvidia-cudnn-frontend>=1.13.0):
#   flashinfer_python-0.3.1-py3-none-any.whl  built here, no AOT kernels inside (data/aot is empty)
#   einops click tqdm tabulate packaging nvidia-ml-py requests (+ urllib3 idna certifi
#   charset-normalizer, requests' own needs): pure Python, pinned; the image has most of them
#   already, they are carried anyway so that the install never depends on its versions.
# Left out on purpose:
#   torch, numpy, triton, jinja2, filelock (torch's own needs), ninja (the image's binary is on
#   PATH): the GPU machine's own builds must be used, never shadowed.
#   pynvml (the distribution): since 12.x it is a deprecation shim whose only content is a .pth
#   warning hook and pynvml_utils; the `pynvml` module FlashInfer imports (lazily, in comm/ only)
#   is nvidia-ml-py's pynvml.py.
#   nvidia-cudnn-frontend: a compiled extension, imported inside try/except (cudnn backend only).
#
# How FlashInfer 0.3.1's JIT works on the GPU machine (read from its sources, flashinfer/jit/):
#   - nvcc and CUDA headers: torch.utils.cpp_extension.CUDA_HOME (env CUDA_HOME or CUDA_PATH,
#     else the folder above `which nvcc`, else /usr/local/cuda); the ninja file runs
#     $CUDA_HOME/bin/nvcc (override: PYTORCH_NVCC), includes $CUDA_HOME/include and
#     $CUDA_HOME/include/cccl, torch's headers, Python.h (sysconfig), and the package's own
#     data/include, data/csrc, data/cutlass, data/spdlog; links -L$CUDA_HOME/lib64 -lcudart and
#     torch's libraries. Host compiler: $CXX (default c++); CC, if set, is passed as -ccbin.
#   - targets: FLASHINFER_CUDA_ARCH_LIST ("9.0" -> sm_90a), else every visible GPU's capability;
#     the fa3 (sm90) module always adds -gencode=arch=compute_90a,code=sm_90a.
#   - cache: $FLASHINFER_WORKSPACE_BASE/.cache/flashinfer/<arch>/ (default base: $HOME), with
#     generated/<uri>/ (rendered sources) and cached_ops/<uri>/<uri>.so (built modules; ninja skips
#     what is up to date). A module found at <package>/data/aot/<uri>/<uri>.so is loaded instead of
#     being built (bench/flashinfer_baseline.py --ops-in uses that to reuse a carried build).
#   - parallelism: ninja -j $MAX_JOBS (default: ninja's own, cores + 2); nvcc --threads
#     $FLASHINFER_NVCC_THREADS (default 1; only helps with several targets).
#   - logging: FLASHINFER_JIT_VERBOSE=1 (full nvcc lines), FLASHINFER_LOGGING_LEVEL.
#   - offline: the fa2/fa3 prefill path downloads nothing. Only the trtllm-gen/cubin kernels
#     (flashinfer/jit/cubin_loader.py, FLASHINFER_CUBINS_REPOSITORY) and artifacts.py fetch over
#     the network; the benchmark never calls them. No environment variable is needed to be offline.
#
# The device command (one `run` with carry [".whl"]) is at the top of bench/flashinfer_baseline.py.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/.whl
CHECK=1
[[ "${1:-}" == "--no-check" ]] && CHECK=0

FI_VERSION=0.3.1
# sha256 of flashinfer_python-0.3.1.tar.gz as PyPI serves it (checked below)
FI_SDIST_SHA256=992017d193dfbbc62e67401a6d5416629bf90b640872d14b7863de45e9371446

# Pure-Python dependencies, pinned (py3-none-any wheels, Python 3.12 on the GPU machine).
DEPS=(
  einops==0.8.2
  click==8.5.1
  tqdm==4.70.1
  tabulate==0.10.0
  packaging==26.3
  nvidia-ml-py==13.615.71
  requests==2.34.2
  urllib3==2.8.0
  idna==3.20
  certifi==2026.10.19.post1
  charset-normalizer==3.5.3
)

if ! grep -qx '/.whl/' .gitignore; then
  echo '/.whl/' >>.gitignore
  echo "added /.whl/ to .gitignore"
fi
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/fetch_flashinfer.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# A throwaway venv with a recent pip/setuptools: the sdist's pyproject needs setuptools >= 77
# (SPDX `license = "..."`) and packaging >= 24; its custom backend asks for torch, ninja, numpy and
# requests only to build AOT kernels, which we do not build, so the build runs without isolation.
python3 -m venv "$WORK/venv"
PIP="$WORK/venv/bin/python -m pip"
$PIP install -q --upgrade pip 'setuptools>=77' 'packaging>=24' wheel

# 1. flashinfer-python sdist -> py3-none-any wheel.
$PIP download -q --no-deps --no-binary=:all: --no-build-isolation -d "$WORK/sdist" "flashinfer-python==$FI_VERSION"
SDIST=$(ls "$WORK"/sdist/flashinfer_python-$FI_VERSION.tar.gz)
GOT=$(sha256sum "$SDIST" | cut -d' ' -f1)
if [[ "$GOT" != "$FI_SDIST_SHA256" ]]; then
  echo "sha256 of $(basename "$SDIST") is $GOT, expected $FI_SDIST_SHA256" >&2
  exit 1
fi
rm -f "$OUT"/flashinfer_python-*.whl
# SOURCE_DATE_EPOCH fixes the zip timestamps: the same sdist gives the same wheel, byte for byte
# (scripts/prebuild_flashinfer_ops.sh keys its cache on the wheels' bytes).
(cd "$WORK" && env -u FLASHINFER_LOCAL_VERSION SOURCE_DATE_EPOCH=1756684800 \
  $PIP wheel -q --no-deps --no-build-isolation -w "$OUT" "$SDIST")
WHEEL="$OUT/flashinfer_python-$FI_VERSION-py3-none-any.whl"
[[ -f "$WHEEL" ]] || { echo "no py3-none-any wheel was built" >&2; exit 1; }
if unzip -l "$WHEEL" | grep -qE '\.so$'; then
  echo "the flashinfer wheel holds compiled objects; expected a pure-Python wheel" >&2
  exit 1
fi

# 2. Pure-Python dependencies for Python 3.12 (py3-none-any only: --implementation py --abi none
#    --platform any makes pip refuse anything compiled).
for spec in "${DEPS[@]}"; do
  name=${spec%%==*}
  norm=$(echo "$name" | tr '-' '_')
  rm -f "$OUT/${norm}"-*.whl "$OUT/${name}"-*.whl
done
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
  --abi none --platform any -d "$OUT" "${DEPS[@]}"

# 3. Every Requires-Dist (markers evaluated for CPython 3.12 on Linux x86_64, no extras) must be
#    carried or be one the GPU machine provides (torch's build and its needs, ninja), or be
#    optional for the dense prefill path. Fails on a missing one or on two versions of one name.
"$WORK/venv/bin/python" - "$OUT" <<'EOF'
import sys, zipfile, pathlib, re
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
out = pathlib.Path(sys.argv[1])
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
on_machine = {"torch", "numpy", "ninja", "triton", "jinja2", "filelock", "markupsafe",
              "typing-extensions"}
optional = {"pynvml": "module pynvml comes from nvidia-ml-py",
            "nvidia-cudnn-frontend": "compiled; imported in try/except, cudnn backend only"}
have, total, bad = {}, 0, False
for w in sorted(out.glob("*.whl")):
    name, ver, _, tags = parse_wheel_filename(w.name)
    if name in have:
        print(f"two versions of {name}: {have[name][0]} and {ver}"); bad = True
    if not all(t.abi == "none" and t.platform == "any" for t in tags):
        print(f"{w.name} is not a pure-Python wheel"); bad = True
    have[name] = (ver, w)
    total += w.stat().st_size
for name, (ver, w) in sorted(have.items()):
    meta = next(n for n in zipfile.ZipFile(w).namelist() if n.endswith(".dist-info/METADATA"))
    for line in zipfile.ZipFile(w).read(meta).decode().splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        r = Requirement(line.split(":", 1)[1].strip())
        if r.marker is not None and not r.marker.evaluate(env):
            continue
        dep = canonicalize_name(r.name)
        if dep in have:
            if not r.specifier.contains(str(have[dep][0]), prereleases=True):
                print(f"{name} needs {r}, carried {have[dep][0]}"); bad = True
        elif dep in on_machine:
            pass
        elif dep in optional:
            print(f"  {name} -> {r}: not carried ({optional[dep]})")
        else:
            print(f"{name} needs {r}: not carried"); bad = True
for name, (ver, w) in sorted(have.items()):
    print(f"  {w.name:60s} {w.stat().st_size/1e6:6.2f} MB")
print(f"  {len(have)} wheels, {total/1e6:.2f} MB in all")
if total > 30e6:
    print("more than 30 MB of wheels"); bad = True
sys.exit(1 if bad else 0)
EOF

# 4. Install check (here, with this machine's python3): the wheels install offline with the same
#    pip flags the device command uses, and flashinfer's pure-Python modules compile.
if [[ $CHECK == 1 ]]; then
  rm -rf "$WORK/site"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$OUT"/*.whl
  python3 -m compileall -q "$WORK/site/flashinfer" >/dev/null
  test -f "$WORK/site/flashinfer/data/csrc/batch_prefill_paged_kernel_inst.jinja"
  test -d "$WORK/site/flashinfer/data/cutlass/include/cute"
  echo "install check: ok ($(du -sh "$WORK/site" | cut -f1) installed)"
fi
echo "wheels in $OUT"
