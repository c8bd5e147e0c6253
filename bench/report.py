#!/usr/bin/env python3
"""Plots and a target check from `losa bench`, torch_baselines.py and flashinfer_baseline.py JSON.

Writes density_curve.png (Figure 3 of the paper: share of the KV cache loaded against active
tokens, per budget), breakdown.png (Figure 6: time per stage of each mode at the headline
configuration) and prints the issue's targets against the measurements.
"""
import argparse
import json

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("--torch", default="")
    ap.add_argument("--flashinfer", default="", help="flashinfer_baseline.py JSON (fa2, CUDA-graph timing)")
    ap.add_argument("--outdir", default=".")
    ap.add_argument("--len", type=int, default=65536)
    ap.add_argument("--block", type=int, default=16)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--active", type=int, default=4)
    a = ap.parse_args()
    b = json.load(open(a.bench))
    t = json.load(open(a.torch)) if a.torch else {"results": []}
    fi = json.load(open(a.flashinfer)) if a.flashinfer else {"results": []}
    card = b["card"]

    curve = [r for r in b["density_curve"] if r["prefix_len"] == a.len and r["block_size"] == a.block]
    if curve:
        plt.figure(figsize=(6, 4))
        for budget in sorted({r["budget_tokens"] for r in curve}):
            pts = sorted((r["active_tokens"], 100 * r["density"]) for r in curve if r["budget_tokens"] == budget)
            plt.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"budget {budget}")
        plt.xlabel("active tokens in the block")
        plt.ylabel("KV cache loaded (%)")
        plt.title(f"LoSA density, L={a.len}, B={a.block} (synthetic workload)")
        plt.grid(alpha=0.3)
        plt.legend()
        plt.tight_layout()
        plt.savefig(f"{a.outdir}/density_curve.png", dpi=120)

    res = [r for r in b["results"] if r["prefix_len"] == a.len and r["block_size"] == a.block]
    staged = [r for r in res if "stages_us" in r]
    if staged:
        # "union" only in results before the eighth round (now part of "topk").
        stages = ["active_set", "page_scores", "topk", "union", "attention", "finalize", "sparsed_select"]
        plt.figure(figsize=(7, 4))
        left = [0.0] * len(staged)
        for st in stages:
            vals = [r["stages_us"].get(st, 0.0) for r in staged]
            if any(vals):
                plt.barh([r["label"] for r in staged], vals, left=left, label=st)
                left = [l + v for l, v in zip(left, vals)]
        plt.xlabel("us per layer-step (events between stages inside the graph)")
        plt.title(f"Stage breakdown, L={a.len}, B={a.block}, {card}")
        plt.legend(fontsize=8)
        plt.tight_layout()
        plt.savefig(f"{a.outdir}/breakdown.png", dpi=120)

    def find(label):
        return next((r for r in res if r["label"] == label), None)
    dense = find("dense")
    losa = find(f"losa b={a.budget} k={a.active}")
    flash = next((r for r in t["results"] if r.get("prefix_len") == a.len and r.get("baseline") == "sdpa_flash" and "time_us" in r), None)
    flex = next((r for r in t["results"] if r.get("prefix_len") == a.len and r.get("baseline") == "flex_attention_selected_pages" and "time_us" in r), None)
    fi_dense = next((r for r in fi["results"] if r.get("prefix_len") == a.len and r.get("block_size") == a.block
                     and r.get("num_seqs") == 1 and r.get("baseline") == "flashinfer_fa2"
                     and r.get("method") == "graph" and "time_us" in r), None)
    bw = b["copy_bandwidth_GBps"]
    print(f"card {card}, copy bandwidth {bw:.0f} GB/s")
    if dense:
        frac = dense["bytes"] / (dense["time_us"] * 1e3) / bw
        print(f"dense {dense['time_us']:.1f} us: {100*frac:.0f}% of copy bandwidth (target >= 85%)")
        if fi_dense:
            print(f"      FlashInfer fa2 dense {fi_dense['time_us']:.1f} us: own dense is "
                  f"{fi_dense['time_us']/dense['time_us']:.2f}x its speed (target: faster)")
    if losa:
        floor = losa["bytes_floor_us"]
        print(f"losa  {losa['time_us']:.1f} us, floor {floor:.1f} us: target <= 1.5 x floor + 10 = {1.5*floor+10:.1f} us")
        if dense:
            print(f"      {dense['time_us']/losa['time_us']:.2f}x faster than own dense (target >= 5x)")
        if flash:
            print(f"      {flash['time_us']/losa['time_us']:.2f}x faster than torch sdpa flash {flash['time_us']:.1f} us (target >= 10x)")
        if flex:
            print(f"      {flex['time_us']/losa['time_us']:.2f}x faster than FlexAttention at the same pages {flex['time_us']:.1f} us (target >= 5x)")
        if fi_dense:
            print(f"      {fi_dense['time_us']/losa['time_us']:.2f}x faster than FlashInfer fa2 dense {fi_dense['time_us']:.1f} us (target >= 5.5x; the paper: 4.14x)")


if __name__ == "__main__":
    main()
