"""A CPU probe of the key lookup the multi-word tasks need (bench/NOTES.md, twelfth round):
does a small model of our architecture learn it under SDAR's block-diffusion objective alone
(answers masked, loss on them only: how the shipped model is trained), and does an auxiliary
causal next-token loss on the clean text (the AR pre-training SDAR starts from) make it learn
sooner?

Examples are MQAR-style: `--facts` statements "key k v1 .. vW ." (W = `--value-words`; keys
and values distinct names of `--names`), then a question "question find k" per fact, answered
by v1 .. vW and eos, at block size 4. Every `--eval-every` steps, fresh examples with all answer
tokens masked (as decoding's first step sees them) give the accuracy of each answer word: word 1
needs the lookup (find the statement whose key the question names), the later ones the lookup
and an offset.

    python3 train/lookup_probe.py --ar-weight 0 --seconds 480 > a.jsonl    # diffusion only
    python3 train/lookup_probe.py --ar-weight 1 --seconds 480 > b.jsonl    # + causal loss
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
from data import EOS, dense_mask, example_tokens, pack_rows  # noqa: E402
from model import ModelShape, SdarModel  # noqa: E402

KEY, PERIOD, QUESTION, FIND = 3, 2, 8, 9  # structure words of the task vocabulary (tasks.hpp)
FIRST_NAME = 32
BLOCK = 4


def example(rng, n_facts, value_words, names):
    """The parts of one example (context + first question, answer, question, answer, ...) and
    its clean token stream."""
    words = FIRST_NAME + rng.choice(names, n_facts * (1 + value_words), replace=False)
    keys = words[:n_facts]
    values = words[n_facts:].reshape(n_facts, value_words)
    context = [t for k, v in zip(keys, values) for t in [KEY, k, *v, PERIOD]]
    parts = []
    for j, i in enumerate(rng.permutation(n_facts)):
        parts.append(np.array((context if j == 0 else []) + [QUESTION, FIND, keys[i]], np.int32))
        parts.append(np.array([*values[i], EOS], np.int32))
    return parts


def clean_stream(parts):
    """The example as plain text (answers padded with eos to a block boundary, as decoding
    commits them): the causal objective's sequence."""
    pieces = []
    for i, part in enumerate(parts):
        pieces.append(part)
        if i % 2 == 1:
            pieces.append(np.full(-sum(len(p) for p in pieces) % BLOCK, EOS, np.int32))
    return np.concatenate(pieces).astype(np.int64)


class MaskEverything:
    """An rng for data.example_tokens that masks every answer token (t = 1, every draw < t)."""

    def random(self, size=None):
        return 1.0 if size is None else np.zeros(size)


def as_tensors(row):
    return {k: torch.from_numpy(np.asarray(row[k])) for k in ["tokens", "positions", "blocks", "noisy", "docs",
                                                               "targets"]}


def evaluate(model, rng, args, n=48):
    """Accuracy of answer words 1..W with the whole answer masked, first question of each example."""
    hits = np.zeros(args.value_words)
    with torch.no_grad():
        for _ in range(n):
            parts = example(rng, args.facts, args.value_words, args.names)[:2]
            tokens, positions, blocks, noisy, targets, _ = example_tokens(parts, BLOCK, MaskEverything())
            row = {"tokens": tokens, "positions": positions, "blocks": blocks, "noisy": noisy,
                   "docs": np.zeros(len(tokens), np.int64), "targets": targets}
            d = as_tensors(row)
            sel = d["targets"] >= 0
            pred = model(d["tokens"], d["positions"], dense_mask(d))[sel].argmax(-1)
            want = d["targets"][sel]
            hits += (pred[:args.value_words] == want[:args.value_words]).numpy()
    return (hits / n).round(3).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ar-weight", type=float, default=0.0, help="weight of the causal next-token loss")
    ap.add_argument("--seconds", type=float, default=480)
    ap.add_argument("--facts", type=int, default=8)
    ap.add_argument("--value-words", type=int, default=3)
    ap.add_argument("--names", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=16, help="examples per step")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng, eval_rng = np.random.default_rng(args.seed), np.random.default_rng(args.seed + 1000)
    torch.manual_seed(args.seed)
    model = SdarModel(ModelShape(vocab_size=FIRST_NAME + args.names, hidden_size=args.hidden,
                                 intermediate_size=2 * args.hidden, num_hidden_layers=args.layers,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=args.hidden // 4))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    t0, step = time.time(), 0
    while time.time() - t0 < args.seconds:
        examples = [example(rng, args.facts, args.value_words, args.names) for _ in range(args.batch)]
        opt.zero_grad()
        rows = pack_rows([(0, parts) for parts in examples], 1024, [BLOCK], rng)
        for row in rows:
            d = as_tensors(vars(row))  # a data.Row
            sel = d["targets"] >= 0
            logits = model.lm_head(model.hidden(d["tokens"], d["positions"], dense_mask(d))[sel])
            (F.cross_entropy(logits, d["targets"][sel]) / len(rows)).backward()
        if args.ar_weight > 0:
            for parts in examples:
                seq = torch.from_numpy(clean_stream(parts))
                pos = torch.arange(len(seq))
                logits = model(seq[:-1], pos[:-1], pos[:-1, None] >= pos[None, :-1])
                (args.ar_weight * F.cross_entropy(logits, seq[1:]) / len(examples)).backward()
        opt.step()
        step += 1
        if step % args.eval_every == 0:
            print(json.dumps({"step": step, "seconds": round(time.time() - t0), "word_accuracy":
                              evaluate(model, eval_rng, args)}), flush=True)


if __name__ == "__main__":
    main()
