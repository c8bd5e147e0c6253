#!/usr/bin/env python3
"""Dense and sparse PyTorch baselines for `losa bench`, on the same shapes.

What a PyTorch user would run instead of losa, one layer's prefix attention of a block of B
queries over L prefix tokens (32 query heads, 8 KV heads, head dim 128, bf16):
  - scaled_dot_product_attention with the flash, cuDNN and memory-efficient backends, GQA;
  - FlexAttention (torch.nn.attention.flex_attention, as SparseD uses it) with a block mask made
    from the pages losa's headline LoSA step selected (`losa bench --selection FILE`), at KV
    block sizes 128 (its default) down to 16 tokens (its best case): a block is kept when any
    selected page overlaps it (the page union rounded up to blocks).
Timing: CUDA events around each call, median over many calls after warm-up; inputs rotate over
copies of K/V that together exceed 4x the L2, random data (never zeros).
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchutil import rotation_copies, time_calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[8192, 32768, 65536, 131072])
    ap.add_argument("--block", type=int, default=16)
    ap.add_argument("--selection", default="")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--json", default="torch_baselines.json")
    ap.add_argument("--flex-only", action="store_true", help="skip the SDPA backends")
    args = ap.parse_args()
    Hq, Hk, D, B = 32, 8, 128, args.block
    G = Hq // Hk
    dev = torch.device("cuda")
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    sel = json.load(open(args.selection)) if args.selection else None
    out = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__, "block_size": B,
           "num_q_heads": Hq, "num_kv_heads": Hk, "head_dim": D, "results": []}
    for L in args.lengths:
        layer_bytes = 2 * Hk * L * D * 2
        copies = rotation_copies(layer_bytes, l2)
        torch.manual_seed(L)
        q = torch.randn(1, Hq, B, D, device=dev, dtype=torch.bfloat16)
        ks = [torch.randn(1, Hk, L, D, device=dev, dtype=torch.bfloat16) for _ in range(copies)]
        vs = [torch.randn(1, Hk, L, D, device=dev, dtype=torch.bfloat16) for _ in range(copies)]
        sdpa_backends = [] if args.flex_only else [("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                                                  ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
                                                  ("sdpa_efficient", SDPBackend.EFFICIENT_ATTENTION)]
        for name, backend in sdpa_backends:
            for gqa in ("native", "expanded"):
                try:
                    with sdpa_kernel(backend):
                        if gqa == "native":
                            fn = lambda i: F.scaled_dot_product_attention(q, ks[i], vs[i], enable_gqa=True)
                        else:  # what older code does: repeat K/V per query head (outside the timing)
                            kx = [k.repeat_interleave(G, dim=1) for k in ks]
                            vx = [v.repeat_interleave(G, dim=1) for v in vs]
                            fn = lambda i: F.scaled_dot_product_attention(q, kx[i], vx[i])
                        us = time_calls(fn, copies, args.reps)
                    out["results"].append({"prefix_len": L, "baseline": name, "gqa": gqa, "time_us": us,
                                           "kv_bytes": layer_bytes})
                    print(f"L={L:6d} {name:15s} gqa={gqa:8s} {us:9.1f} us", flush=True)
                    break
                except Exception as e:  # a backend may not support a shape or GQA
                    out["results"].append({"prefix_len": L, "baseline": name, "gqa": gqa,
                                           "error": str(e).splitlines()[0][:200]})
                    print(f"L={L:6d} {name:15s} gqa={gqa:8s} unavailable: {str(e).splitlines()[0][:120]}")
        if sel and sel["prefix_len"] == L and sel["block_size"] == B:
            # FlexAttention at the pages LoSA selected, with KV blocks of 128 tokens (its default)
            # down to the smallest size it accepts (its best case: the least rounding of the
            # page union); each size that compiles is reported.
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            flex = torch.compile(flex_attention)
            page_density = sum(len(p) for p in sel["kv_head_pages"]) / (Hk * sel["num_pages"])
            for kv_block in (128, 64, 32, 16):
                nblocks = (L + kv_block - 1) // kv_block
                allowed = torch.zeros(Hk, nblocks, dtype=torch.bool, device=dev)
                for h, pages in enumerate(sel["kv_head_pages"]):
                    for p in pages:  # a page of P tokens covers P / kv_block blocks, or part of one
                        first = p * sel["page_size"] // kv_block
                        last = ((p + 1) * sel["page_size"] - 1) // kv_block
                        allowed[h, first:last + 1] = True
                block_density = allowed.float().mean().item()
                mask_mod = lambda b, h, q_idx, kv_idx, allowed=allowed, kv_block=kv_block: allowed[h // G, kv_idx // kv_block]
                try:
                    # Q blocks of 128 (the kernels' tile: B = 16 queries fill part of one); KV blocks
                    # below the kernel's default tile need its BLOCK_N lowered to match.
                    options = None if kv_block >= 128 else {"BLOCK_N": kv_block}
                    block_mask = create_block_mask(mask_mod, None, Hq, B, L, device="cuda", BLOCK_SIZE=(128, kv_block))
                    us = time_calls(lambda i: flex(q, ks[i], vs[i], block_mask=block_mask, enable_gqa=True,
                                                   kernel_options=options), copies, args.reps)
                    dense_mask = create_block_mask(lambda b, h, q_idx, kv_idx: kv_idx >= 0, None, Hq, B, L,
                                                   device="cuda", BLOCK_SIZE=(128, kv_block))
                    us_dense = time_calls(lambda i: flex(q, ks[i], vs[i], block_mask=dense_mask, enable_gqa=True,
                                                         kernel_options=options), copies, args.reps)
                    out["results"].append({"prefix_len": L, "baseline": "flex_attention_selected_pages",
                                           "time_us": us, "kv_block_tokens": kv_block,
                                           "page_density": page_density, "block_density": block_density,
                                           "active_tokens": len(sel["active_tokens"])})
                    out["results"].append({"prefix_len": L, "baseline": "flex_attention_dense", "time_us": us_dense,
                                           "kv_block_tokens": kv_block})
                    print(f"L={L:6d} flex selected    {us:9.1f} us  (pages {100*page_density:.2f}% -> "
                          f"{kv_block}-token blocks {100*block_density:.2f}%), flex dense {us_dense:.1f} us", flush=True)
                except Exception as e:
                    out["results"].append({"prefix_len": L, "baseline": "flex_attention_selected_pages",
                                           "kv_block_tokens": kv_block, "error": str(e).splitlines()[0][:300]})
                    print(f"L={L:6d} flex with {kv_block}-token blocks failed: {str(e).splitlines()[0][:160]}", flush=True)
        ks = vs = None  # frees the copies before the next length (pyflakes rejects del of names lambdas use)
        torch.cuda.empty_cache()
    json.dump(out, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
