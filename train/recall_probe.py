"""A CPU probe of how fast a small model of our architecture learns associative recall, before
spending GPU time on the task suite (bench/NOTES.md, "Third round").

Sequences of 24 facts "key k is v ." then a question "question: find k answer:" for each fact,
answered by v and eos. --objective diffusion trains it as the shipped model is trained (data.py:
block-causal clean blocks plus a noisy copy, block size 4); --objective causal as a plain causal LM
(the control). Prints the accuracy on the value token every 50 steps.

    python3 train/recall_probe.py --objective causal --seconds 600
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import dense_mask, pack_rows  # noqa: E402
from model import ModelShape, SdarModel  # noqa: E402

KEY, IS, PERIOD, QUESTION, FIND, ANSWER, EOS = 3, 4, 2, 8, 9, 13, 0


def facts(rng, n):
    keys = rng.choice(np.arange(32, 512), n, replace=False)
    return keys, rng.integers(32, 512, n)


def diffusion_rows(rng, n_facts, batch):
    examples = []
    for _ in range(batch):
        keys, vals = facts(rng, n_facts)
        context = [t for k, v in zip(keys, vals) for t in (KEY, k, IS, v, PERIOD)]
        parts = []
        for j, i in enumerate(rng.permutation(n_facts)):
            question = [QUESTION, FIND, keys[i], ANSWER]
            parts.append(np.array((context if j == 0 else []) + question, np.int32))
            parts.append(np.array([vals[i], EOS], np.int32))
        examples.append((0, parts))
    return pack_rows(examples, 2048, [4], rng)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objective", choices=["diffusion", "causal"], default="diffusion")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--facts", type=int, default=24)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = SdarModel(ModelShape(hidden_size=128, num_hidden_layers=2, intermediate_size=256,
                                 num_attention_heads=4, num_key_value_heads=2))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    t0, step, hist = time.time(), 0, []
    while time.time() - t0 < args.seconds:
        opt.zero_grad()
        if args.objective == "diffusion":
            for row in diffusion_rows(rng, args.facts, 8):
                d = {k: torch.from_numpy(getattr(row, k)) for k in ["tokens", "positions", "blocks", "noisy", "docs", "targets"]}
                sel = d["targets"] >= 0
                logits = model.lm_head(model.hidden(d["tokens"], d["positions"], dense_mask(d))[sel])
                F.cross_entropy(logits, d["targets"][sel]).backward()
                value = d["targets"][sel] >= 32
                hist.append((logits.argmax(-1) == d["targets"][sel])[value].float().mean().item())
        else:
            for _ in range(8):
                keys, vals = facts(rng, args.facts)
                seq = [t for k, v in zip(keys, vals) for t in (KEY, k, IS, v, PERIOD)]
                tgt = [-100] * len(seq)
                for i in rng.permutation(args.facts):
                    seq += [QUESTION, FIND, keys[i], ANSWER, vals[i], EOS]
                    tgt += [-100, -100, -100, vals[i], -100, -100]  # position i predicts token i+1
                s, t = torch.tensor(seq), torch.tensor(tgt)
                pos = torch.arange(len(s))
                logits = model(s, pos, pos[None, :] <= pos[:, None])[t >= 0]
                (F.cross_entropy(logits, t[t >= 0]) / 8).backward()
                hist.append((logits.argmax(-1) == t[t >= 0]).float().mean().item())
        opt.step()
        step += 1
        if step % 50 == 0:
            print(json.dumps({"step": step, "value_accuracy": round(float(np.mean(hist[-50:])), 4),
                              "seconds": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
