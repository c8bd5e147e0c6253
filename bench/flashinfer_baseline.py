#!/usr/bin/env python3
"""FlashInfer's dense paged prefill attention (the LoSA paper's baseline) on `losa bench`'s shapes.

The call SGLang makes for a diffusion block's prefix: BatchPrefillWithPagedKVCacheWrapper with
causal=False, kv_layout "HND" (our cache layout: K and V pools of [pages, kv heads, page, dim]),
page 16, bf16, 32 query heads over 8 KV heads, head dim 128; a block of B query rows per sequence
attends to its whole prefix of L tokens. Backends fa2 and fa3 (each reported separately).
Configurations: every (L, B) of --lengths x --blocks for one sequence, and a batch of --batch
sequences of different lengths (32768 - 517 i) at B = --batch-block.

Method (as bench/torch_baselines.py and `losa bench`): plan() once per configuration; the KV cache
is rotated over copies that together hold >= 4x the L2 (random bf16, never zeros); "graph": each
copy's run() is captured in a CUDA graph, replays timed with events one at a time, median of --reps
after warm-up (what `losa bench` does); "eager": events around each run() call (what
torch_baselines.py does for SDPA; includes FlashInfer's Python-side launch cost). Each
configuration is checked once against a float32 reference of the whole output (relative L2 error
< --tol, no NaN) before it is timed; a failed check is reported and the configuration not timed.

FlashInfer compiles its kernels with nvcc at first use. The builds run in child processes, started
together at the beginning (fa3's at lower CPU priority); the first backend (fa2) may take until
--deadline-s - 60 s, the others until --deadline-s - --bench-reserve-s, after which they are killed
and reported as not built. Results are written to --json after every measurement, so a run cut
short keeps what it measured.

Device command (one `run`, carry [".whl"] made by scripts/fetch_flashinfer.sh and, optionally,
scripts/prebuild_flashinfer_ops.sh; timeout_s 600):

  set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site FLASHINFER_WORKSPACE_BASE=/tmp/fi-ws FLASHINFER_CUDA_ARCH_LIST=9.0 PYTHONUNBUFFERED=1 && python3 bench/flashinfer_baseline.py --ops-in .whl/ops --ops-out $OUT --json $OUT/flashinfer.json 2>&1 | tee $OUT/flashinfer.log

Expected: with .whl/ops (modules compiled here for sm_90a against torch 2.11.0+cu130 and CUDA
13.0, checked against a manifest, loaded as FlashInfer's AOT modules) about 2 min: imports,
loading, about 1 min of measurements. Without it (or when they do not match or load) up to 8 min:
each backend is one module of 10 nvcc jobs (8 kernel files + 2) run in parallel; here, on 2 cores,
fa2 took 1 min (quiet machine) and fa3 18 min (shared machine), the issue measured about 3 min on
the device; fa3 builds beside fa2 at lower priority and is killed at --deadline-s -
--bench-reserve-s = 6.5 min from start if unfinished; --backends fa2 skips it. --ops-out copies what was compiled there (<= 16 MiB each, with manifest.json) to $OUT,
to be carried as .whl/ops next time. Offline: the fa2/fa3 prefill path downloads nothing; the
environment variables are the JIT's (scripts/fetch_flashinfer.sh lists them).
"""
import argparse
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import torch

from benchutil import capture_graphs, copy_bandwidth_gbps, rotation_copies, time_calls

HQ, HK, D, PAGE = 32, 8, 128, 16
DEV = "cuda"
DTYPE = torch.bfloat16
IDTYPE = torch.int32
WORKSPACE_BYTES = 256 << 20
MAX_OUT_FILE = 16 << 20  # the largest file the device tool brings back


def module_args():
    """get_batch_prefill_module's arguments after the backend, as plan() forms them for our call:
    q, kv and o dtype, index dtype, head dims, no positional encoding, no sliding window, no soft
    cap, no fp16 qk reduction."""
    return (DTYPE, DTYPE, DTYPE, IDTYPE, D, D, 0, False, False, False)


def module_uri(backend):
    from flashinfer.jit.attention.pytorch import get_batch_prefill_uri
    return get_batch_prefill_uri(backend, *module_args())


def build_only(backend):
    """Child process: JIT-build (or load a prebuilt) prefill module of one backend."""
    t = time.time()
    from flashinfer.jit.attention.pytorch import gen_batch_prefill_module
    spec = gen_batch_prefill_module(backend, *module_args())
    print(f"[{backend}] {len(spec.sources)} sources, prebuilt={spec.is_aot}, JIT folder {spec.ninja_path.parent}",
          flush=True)
    if spec.is_aot:
        try:
            spec.build_and_load()  # loads the prebuilt module
            print(f"[{backend}] prebuilt module loaded: {spec.aot_path}", flush=True)
            return
        except Exception as e:  # noqa: BLE001 - a module built elsewhere may not load here
            print(f"[{backend}] prebuilt module does not load ({type(e).__name__}: {str(e)[:500]}); "
                  "removing it and compiling", flush=True)
            spec.aot_path.unlink()
    spec.build_and_load()
    print(f"[{backend}] built and loaded in {time.time() - t:.0f} s: {spec.get_library_path()}", flush=True)


def manifest():
    """What a built module depends on: it loads only where these match."""
    import flashinfer
    return {"flashinfer": flashinfer.__version__, "torch": torch.__version__, "cuda": torch.version.cuda,
            "arch": os.environ.get("FLASHINFER_CUDA_ARCH_LIST", "visible GPUs"),
            "python_built_with": sys.version.split()[0], "nvcc": nvcc_version()[1]}


def install_prebuilt(ops_in, backends, log):
    """Put DIR/<uri>.so where FlashInfer looks for AOT modules (<package>/data/aot/<uri>/), so that
    it loads them instead of compiling, if DIR/manifest.json matches this flashinfer and torch."""
    from flashinfer.jit import env as jit_env
    path = os.path.join(ops_in, "manifest.json")
    if not os.path.isfile(path):
        log(f"prebuilt modules: no {path}; compiling")
        return []
    m = json.load(open(path))
    here = manifest()
    for key in ("flashinfer", "torch", "cuda"):
        if m.get(key) != here[key]:
            log(f"prebuilt modules: built for {key} {m.get(key)}, here {here[key]}; compiling")
            return []
    if torch.cuda.get_device_capability(0)[0] != 9:
        log("prebuilt modules: built for sm_90a, this GPU is not sm_90; compiling")
        return []
    found = []
    for b in backends:
        uri = module_uri(b)
        src = os.path.join(ops_in, uri + ".so")
        if os.path.isfile(src):
            dst = jit_env.FLASHINFER_AOT_DIR / uri
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / (uri + ".so"))
            found.append(b)
    log(f"prebuilt modules from {ops_in} ({m}): {found or 'none'}")
    return found


def export_built(ops_out, backends, log):
    """Copy the JIT-built modules (<= 16 MiB each) to ops_out and list them in its manifest.json,
    for --ops-in. A module that was loaded prebuilt has no JIT build and is not exported again."""
    from flashinfer.jit import env as jit_env
    exported = []
    for b in backends:
        uri = module_uri(b)
        so = jit_env.FLASHINFER_JIT_DIR / uri / (uri + ".so")
        if not so.is_file():
            continue
        size = so.stat().st_size
        if size > MAX_OUT_FILE:
            log(f"built module {so.name}: {size / 2**20:.1f} MiB, too large to export")
            continue
        os.makedirs(ops_out, exist_ok=True)
        shutil.copy2(so, os.path.join(ops_out, so.name))
        exported.append(b)
        log(f"exported {so.name} ({size / 2**20:.1f} MiB) to {ops_out}")
    if exported:
        # Keep the modules of other backends already there when they were built for the same
        # flashinfer, torch and CUDA.
        path = os.path.join(ops_out, "manifest.json")
        here = manifest()
        modules = {}
        if os.path.isfile(path):
            old = json.load(open(path))
            if all(old.get(k) == here[k] for k in ("flashinfer", "torch", "cuda")):
                modules = {b: f for b, f in old.get("modules", {}).items()
                           if os.path.isfile(os.path.join(ops_out, f))}
        modules.update({b: module_uri(b) + ".so" for b in exported})
        with open(path, "w") as f:
            json.dump(dict(here, modules=modules), f, indent=1)
    return exported


def build_all(backends, args, t0, log_dir, log):
    """Starts one build child per backend at once; waits with per-backend caps. Returns
    {backend: {"ok", "seconds", "error"?}}."""
    procs = {}
    for i, b in enumerate(backends):
        logf = open(os.path.join(log_dir, f"flashinfer_build_{b}.log"), "w")
        # Own process group (so that a cap kills its ninja and nvcc too), same session (so that
        # nothing outlives the command on the device machine); builds after the first run niced.
        pre = (lambda: (os.setpgrp(), os.nice(10))) if i > 0 else os.setpgrp
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--build-only", b],
                             stdout=logf, stderr=subprocess.STDOUT, preexec_fn=pre)
        cap = args.deadline_s - (60 if i == 0 else args.bench_reserve_s)
        procs[b] = (p, logf, time.time(), cap)
        log(f"build {b}: started (pid {p.pid}), cap {cap:.0f} s from start")
    status = {}
    while len(status) < len(procs):
        for b, (p, logf, start, cap) in procs.items():
            if b in status:
                continue
            rc = p.poll()
            if rc is None and time.time() - t0 < cap:
                continue
            if rc is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                status[b] = {"ok": False, "seconds": time.time() - start,
                             "error": f"build killed at its cap of {cap:.0f} s from start"}
            elif rc != 0:
                status[b] = {"ok": False, "seconds": time.time() - start, "error": f"build exited {rc}"}
            else:
                status[b] = {"ok": True, "seconds": time.time() - start}
            logf.close()
            tail = open(logf.name, errors="replace").read()[-6000:]
            status[b]["prebuilt_loaded"] = "prebuilt module loaded" in tail
            if not status[b]["ok"]:
                status[b]["log_tail"] = tail
                log(f"build {b}: FAILED after {status[b]['seconds']:.0f} s ({status[b]['error']}); log tail:\n{tail}")
            else:
                how = "prebuilt module loaded" if status[b]["prebuilt_loaded"] else "compiled"
                log(f"build {b}: ok in {status[b]['seconds']:.0f} s ({how})")
        time.sleep(1.0)
    return status


def page_table(lengths, dev):
    """CSR page table of consecutive physical pages (a fresh pool, as `losa bench` lays it out)."""
    pages = [math.ceil(n / PAGE) for n in lengths]
    indptr = torch.tensor([0] + [sum(pages[:i + 1]) for i in range(len(pages))], dtype=IDTYPE)
    indices = torch.arange(sum(pages), dtype=IDTYPE)
    last = torch.tensor([n - (p - 1) * PAGE for n, p in zip(lengths, pages)], dtype=IDTYPE)
    return indptr.to(dev), indices.to(dev), last.to(dev), sum(pages)


def reference_error(q, out, k_cache, v_cache, lengths, B, indptr):
    """Relative L2 error (and max abs error) of out against a float32 reference, every head."""
    G = HQ // HK
    scale = 1.0 / math.sqrt(D)
    num, den, max_abs = 0.0, 0.0, 0.0
    ip = indptr.tolist()
    for s, n in enumerate(lengths):
        pages = torch.arange(ip[s], ip[s + 1], device=q.device)
        rows = slice(s * B, (s + 1) * B)
        for h in range(HK):
            k = k_cache[pages, h].reshape(-1, D)[:n].float()
            v = v_cache[pages, h].reshape(-1, D)[:n].float()
            qh = q[rows, h * G:(h + 1) * G].float().reshape(-1, D)
            p = torch.softmax((qh @ k.T) * scale, dim=-1)
            ref = (p @ v).reshape(B, G, D)
            got = out[rows, h * G:(h + 1) * G].float()
            if not torch.isfinite(got).all():
                return float("nan"), float("nan")
            num += (got - ref).pow(2).sum().item()
            den += ref.pow(2).sum().item()
            max_abs = max(max_abs, (got - ref).abs().max().item())
    return math.sqrt(num / den), max_abs


def run_config(fi, backend, lengths, B, args, l2, copy_bw, emit, log):
    dev = torch.device(DEV)
    nseq = len(lengths)
    kv_bytes = sum(2 * HK * n * D * 2 for n in lengths)
    base = {"baseline": f"flashinfer_{backend}", "backend": backend, "prefix_len": lengths[0],
            "block_size": B, "num_seqs": nseq, "kv_bytes": kv_bytes}
    if nseq > 1:
        base["prefix_lens"] = list(lengths)
    indptr, indices, last, num_pages = page_table(lengths, dev)
    copies = rotation_copies(kv_bytes, l2)
    base["copies"] = copies
    torch.manual_seed(lengths[0] * 131 + B)
    ks = [torch.randn(num_pages, HK, PAGE, D, device=dev, dtype=DTYPE) for _ in range(copies)]
    vs = [torch.randn(num_pages, HK, PAGE, D, device=dev, dtype=DTYPE) for _ in range(copies)]
    q = torch.randn(nseq * B, HQ, D, device=dev, dtype=DTYPE)
    out = torch.empty_like(q)
    qo_indptr = torch.arange(0, (nseq + 1) * B, B, dtype=IDTYPE, device=dev)
    label = f"{backend:3s} L={lengths[0]:6d}{'x' + str(nseq) if nseq > 1 else '':3s} B={B:2d}"
    try:
        ws = torch.empty(WORKSPACE_BYTES, dtype=torch.uint8, device=dev)
        w = fi.BatchPrefillWithPagedKVCacheWrapper(ws, kv_layout="HND", backend=backend)
        w.plan(qo_indptr, indptr, indices, last, HQ, HK, D, PAGE, causal=False,
               q_data_type=DTYPE, kv_data_type=DTYPE)
        w.run(q, (ks[0], vs[0]), out=out)
        torch.cuda.synchronize()
        rel, max_abs = reference_error(q, out, ks[0], vs[0], lengths, B, indptr)
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        msg = f"{type(e).__name__}: {str(e).strip()[:1500]}"
        emit(dict(base, method="plan/run", error=msg))
        log(f"{label}  FAILED: {msg.splitlines()[0][:200]}")
        return
    base.update(check_rel_l2=rel, check_max_abs=max_abs)
    if not rel < args.tol:
        emit(dict(base, method="check", error=f"relative L2 error {rel:.3g} >= {args.tol} (or NaN)"))
        log(f"{label}  WRONG RESULT: relative L2 error {rel:.3g} (max abs {max_abs:.3g}); not timed")
        return

    def report(method, p10, med, p90):
        gbps = kv_bytes / (med * 1e3)
        emit(dict(base, method=method, time_us=med, p10_us=p10, p90_us=p90, achieved_GBps=gbps,
                  copy_bw_fraction=gbps / copy_bw))
        log(f"{label}  {method:5s} {med:9.1f} us  (p10 {p10:8.1f}, p90 {p90:8.1f})  {gbps:7.0f} GB/s "
            f"{100 * gbps / copy_bw:4.0f}% of copy bw   check rel {rel:.1e}")

    def call(i):
        w.run(q, (ks[i], vs[i]), out=out)

    try:
        report("eager", *time_calls(call, copies, args.reps, args.warmup, quantiles=True))
    except Exception as e:  # noqa: BLE001
        emit(dict(base, method="eager", error=f"{type(e).__name__}: {str(e)[:1500]}"))
        log(f"{label}  eager FAILED: {e}")
    if not args.no_graph:
        try:
            graphs = capture_graphs(call, copies)
            report("graph", *time_calls(lambda i: graphs[i].replay(), copies, args.reps, args.warmup,
                                        quantiles=True))
            del graphs
        except Exception as e:  # noqa: BLE001
            emit(dict(base, method="graph", error=f"{type(e).__name__}: {str(e)[:1500]}"))
            log(f"{label}  graph FAILED: {e}")


def nvcc_version():
    from torch.utils.cpp_extension import CUDA_HOME
    nvcc = os.path.join(CUDA_HOME or "/usr/local/cuda", "bin", "nvcc")
    try:
        txt = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
        return nvcc, txt.strip().splitlines()[-1] if txt.strip() else "?"
    except OSError as e:
        return nvcc, f"not runnable: {e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[8192, 32768, 65536, 131072])
    ap.add_argument("--blocks", type=int, nargs="+", default=[4, 16, 32, 64])
    ap.add_argument("--batch", type=int, default=8, help="sequences in the batch configuration (0: none)")
    ap.add_argument("--batch-len", type=int, default=32768)
    ap.add_argument("--batch-step", type=int, default=517, help="sequence i has batch-len - i * step tokens")
    ap.add_argument("--batch-block", type=int, default=16)
    ap.add_argument("--backends", nargs="+", default=["fa2", "fa3"], choices=["fa2", "fa3"])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-2, help="largest relative L2 error accepted")
    ap.add_argument("--no-graph", action="store_true", help="eager timing only")
    ap.add_argument("--deadline-s", type=float, default=540.0,
                    help="seconds from start by which the run should end (builds are capped by it)")
    ap.add_argument("--bench-reserve-s", type=float, default=150.0,
                    help="time kept for measuring: builds after the first are killed at deadline - this")
    ap.add_argument("--ops-in", default="", help="folder of prebuilt <uri>.so modules to load instead of building")
    ap.add_argument("--ops-out", default="", help="folder to copy the built modules to (those <= 16 MiB)")
    ap.add_argument("--json", default="flashinfer_baseline.json")
    ap.add_argument("--build-only", default="", help=argparse.SUPPRESS)
    ap.add_argument("--export-only", action="store_true",
                    help="copy the already built modules of --backends to --ops-out, then exit")
    args = ap.parse_args()
    if args.build_only:
        build_only(args.build_only)
        return 0
    if args.export_only:
        return 0 if len(export_built(args.ops_out, args.backends, print)) == len(args.backends) else 1

    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.1f} s] {msg}", flush=True)

    if not torch.cuda.is_available():
        print("flashinfer_baseline: no CUDA device; this benchmark needs a GPU", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 reference is float32
    import flashinfer as fi
    from flashinfer.jit import env as jit_env
    prop = torch.cuda.get_device_properties(0)
    l2 = prop.L2_cache_size
    nvcc, nvcc_ver = nvcc_version()
    log(f"{prop.name}: {prop.multi_processor_count} SMs, L2 {l2 / 2**20:.0f} MiB; torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}); flashinfer {fi.__version__} at {os.path.dirname(fi.__file__)}; "
        f"nvcc {nvcc}: {nvcc_ver}; JIT cache {jit_env.FLASHINFER_WORKSPACE_DIR}")
    copy_bw = copy_bandwidth_gbps()
    log(f"device-to-device copy {copy_bw:.0f} GB/s (read + write)")

    json_path = os.path.abspath(args.json)
    log_dir = os.path.dirname(json_path)
    os.makedirs(log_dir, exist_ok=True)
    doc = {"card": prop.name, "sms": prop.multi_processor_count, "l2_bytes": l2,
           "date": datetime.date.today().isoformat(), "command": " ".join(sys.argv),
           "torch": torch.__version__, "cuda": torch.version.cuda, "nvcc": nvcc_ver,
           "flashinfer": fi.__version__, "copy_bandwidth_GBps": copy_bw,
           "shape": {"num_q_heads": HQ, "num_kv_heads": HK, "head_dim": D, "page_size": PAGE,
                     "dtype": "bf16", "kv_layout": "HND", "causal": False},
           "call": "BatchPrefillWithPagedKVCacheWrapper(workspace 256 MiB, kv_layout='HND', "
                   "backend=B).plan(qo_indptr, kv_indptr, kv_indices, last_page_len, 32, 8, 128, 16, "
                   "causal=False, q_data_type=bf16) once; .run(q, (k_cache, v_cache), out=o) timed",
           "method": "graph: median of CUDA-graph replays of run(), events around each replay; eager: "
                     "median of run() calls, events around each; warm-up first; KV cache copies "
                     "rotated (>= 4x L2 touched); random data; each configuration checked against "
                     "a float32 reference first",
           "builds": {}, "results": []}

    def save():
        tmp = json_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, json_path)

    def emit(row):
        doc["results"].append(row)
        save()

    prebuilt = install_prebuilt(args.ops_in, args.backends, log) if args.ops_in else []
    doc["builds"] = build_all(args.backends, args, t0, log_dir, log)
    for b in prebuilt:
        doc["builds"][b]["prebuilt_offered"] = args.ops_in
    save()

    configs = [([L], B) for L in args.lengths for B in args.blocks]
    if args.batch > 0:
        configs.append(([args.batch_len - i * args.batch_step for i in range(args.batch)], args.batch_block))
    for backend in args.backends:
        if not doc["builds"][backend]["ok"]:
            log(f"{backend}: not built, not measured")
            continue
        for lengths, B in configs:
            if time.time() - t0 > args.deadline_s:
                emit({"baseline": f"flashinfer_{backend}", "backend": backend, "prefix_len": lengths[0],
                      "block_size": B, "num_seqs": len(lengths), "error": "skipped: past --deadline-s"})
                log(f"{backend} L={lengths[0]} B={B}: skipped, past the deadline")
                continue
            run_config(fi, backend, lengths, B, args, l2, copy_bw, emit, log)
            torch.cuda.empty_cache()  # the configuration's caches and graphs died with run_config
    if args.ops_out:
        export_built(args.ops_out, [b for b in args.backends
                                    if doc["builds"][b]["ok"] and not doc["builds"][b]["prebuilt_loaded"]], log)

    ok = [r for r in doc["results"] if "time_us" in r]
    bad = [r for r in doc["results"] if "error" in r]
    print(f"\n{'backend':7s} {'method':6s} {'L':>7s} {'seqs':>4s} {'B':>3s} {'time us':>9s} {'GB/s':>6s} "
          f"{'%copy':>5s} {'rel err':>8s}")
    for r in ok:
        print(f"{r['backend']:7s} {r['method']:6s} {r['prefix_len']:7d} {r['num_seqs']:4d} {r['block_size']:3d} "
              f"{r['time_us']:9.1f} {r['achieved_GBps']:6.0f} {100 * r['copy_bw_fraction']:5.0f} "
              f"{r['check_rel_l2']:8.1e}")
    for r in bad:
        print(f"{r['baseline']} L={r['prefix_len']} B={r['block_size']} seqs={r['num_seqs']} "
              f"{r.get('method', '')}: {r['error'].splitlines()[0][:160]}")
    failed_builds = [b for b, s in doc["builds"].items() if not s["ok"]]
    log(f"wrote {json_path}: {len(ok)} timings, {len(bad)} errors"
        + (f", not built: {' '.join(failed_builds)}" if failed_builds else ""))
    # Exit status: 0 when the first backend (fa2) was measured everywhere without error.
    first = args.backends[0]
    return 0 if not any(r["backend"] == first for r in bad) and doc["builds"][first]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
