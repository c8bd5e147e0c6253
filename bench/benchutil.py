"""Timing helpers shared by the Python baselines (torch_baselines.py, flashinfer_baseline.py).

The conventions are those of `losa bench`: CUDA events around each call (or each CUDA-graph
replay), synchronised after each, median over many calls after warm-up; the inputs rotate over
copies of the KV cache that together exceed 4x the L2, so that no call finds its K/V in the L2.
"""
import math

import torch


def rotation_copies(bytes_per_copy, l2_bytes):
    """How many copies of a KV cache of bytes_per_copy bytes to rotate over: >= 4x L2, >= 2."""
    return max(2, math.ceil(4 * l2_bytes / bytes_per_copy))


def time_calls(fn, copies, reps, warmup=5, quantiles=False):
    """Median (us) of fn(i % copies), one pair of events around each call, synchronised after each.

    With quantiles=True returns (p10, median, p90)."""
    times = []
    for i in range(warmup + reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(i % copies)
        stop.record()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(stop) * 1000.0)
    times.sort()
    med = times[len(times) // 2]
    if quantiles:
        return times[len(times) // 10], med, times[(len(times) * 9) // 10]
    return med


def capture_graphs(fn, copies, warmup=2):
    """One CUDA graph per copy, each holding fn(i); fn is warmed up on a side stream first."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            for i in range(copies):
                fn(i)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graphs = []
    for i in range(copies):
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn(i)
        graphs.append(g)
    torch.cuda.synchronize()
    return graphs


def copy_bandwidth_gbps(nbytes=1 << 30, reps=12):
    """Device-to-device copy bandwidth, read + write, GB/s (as `losa bench` measures it)."""
    a = torch.ones(nbytes, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    times = []
    for i in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        stop.record()
        torch.cuda.synchronize()
        if i >= 2:
            times.append(start.elapsed_time(stop) * 1000.0)
    times.sort()
    del a, b
    torch.cuda.empty_cache()
    return 2.0 * nbytes / (times[len(times) // 2] * 1e3)
