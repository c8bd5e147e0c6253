"""Which answer words a model can decide, and from what: a CPU probe of a trained model on the task
suite (bench/NOTES.md, "Sixth round", says what it found).

For each example the answer block (the answer padded with eos to one block, starting at a block
boundary as `losa eval` decodes it) is predicted three ways, and the accuracy of each answer
word's argmax is printed by its position in the answer:
  all_masked      every answer word masked: what the dense first denoising step decides;
  left_clean      the words before it given, it and the rest masked: whether the model copies
                  the successor of the word just decided (an induction step);
  only_this       every other word given: whether the words around it suffice.
A model that retrieves a fact by matching its key is right at position 1 in every row; one that
has learned the induction step is right everywhere in left_clean.

--copy instead probes copying itself: a passage of 200 distinct words, filler, then one word of
the passage as the cue (bare, after "question find", or after "key"); the accuracy of each of
the 6 words that follow the cue in the passage, all masked. An induction head is right at every
position whatever the prefix.

    python3 train/answer_probe.py --losa build/tools/losa --model models/losa-tasks-6l \
        --tasks multi_key chain --length 512 --samples 8
    python3 train/answer_probe.py --losa build/tools/losa --checkpoint .train/NAME ...
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import EOS, FIND, FIRST_CONTENT, FIRST_FILLER, KEY, MASK, QUESTION, read_shard  # noqa: E402
from model import ModelShape, SdarModel, folder_shape, load_folder_weights  # noqa: E402
from train import load_checkpoint  # noqa: E402


def load_model(model_dir, checkpoint):
    if checkpoint:
        state = load_checkpoint(checkpoint)
        if state is None:
            raise SystemExit(f"--checkpoint: no {checkpoint}.part* files")
        model = SdarModel(ModelShape(**state["shape"]))
        model.load_state_dict(state["model"])
    else:
        model = SdarModel(folder_shape(model_dir))
        load_folder_weights(model, model_dir)
    return model.eval()


def block_probabilities(model, prompt, block_tokens, block):
    """Softmax over the vocabulary at each position of the answer block, the prompt block-causal."""
    tokens = torch.from_numpy(np.concatenate([prompt, block_tokens]).astype(np.int64))
    positions = torch.arange(len(tokens))
    blocks = positions // block
    with torch.no_grad():
        logits = model(tokens, positions, blocks[None, :] <= blocks[:, None])
    return logits[len(prompt):].float().softmax(-1)


def probe(model, prompt, answer, block):
    """Per answer word (eos excluded): right or not in each condition, and all_masked's confidence."""
    words = len(answer) - 1
    if len(answer) > block:
        raise SystemExit(f"--block ({block}) must hold the answer ({len(answer)} tokens)")
    full = np.concatenate([answer, np.full(block - len(answer), EOS)])
    probs = block_probabilities(model, prompt, np.full(block, MASK), block)
    out = {"all_masked": (probs.argmax(-1).numpy() == full)[:words],
           "confidence": probs.max(-1).values.numpy()[:words], "left_clean": [], "only_this": []}
    for j in range(words):
        left = full.copy()
        left[j:] = MASK
        out["left_clean"].append(block_probabilities(model, prompt, left, block)[j].argmax().item() == full[j])
        one = full.copy()
        one[j] = MASK
        out["only_this"].append(block_probabilities(model, prompt, one, block)[j].argmax().item() == full[j])
    return out


def copy_probe(model, block, samples, seed, words_shown=6):
    rng = np.random.default_rng(seed)
    for name, prefix in [("bare cue", []), ("question find cue", [QUESTION, FIND]), ("key cue", [KEY])]:
        right = []
        for _ in range(samples):
            passage = rng.choice(np.arange(FIRST_CONTENT, model.shape.vocab_size), 200, replace=False)
            lead = -(len(passage) + len(prefix) + 1) % block + block
            filler = rng.choice(np.arange(FIRST_FILLER, model.shape.vocab_size), lead)  # so that the answer starts a block
            at = int(rng.integers(0, len(passage) - block - 1))
            prompt = np.concatenate([passage, filler, prefix, passage[at:at + 1]])
            probs = block_probabilities(model, prompt, np.full(block, MASK), block)
            right.append(probs.argmax(-1).numpy()[:words_shown] == passage[at + 1:at + 1 + words_shown])
        print(f"copy {name:18s}", " ".join(f"{x:5.2f}" for x in np.mean(right, 0)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--losa", default="", help="the losa binary (writes the task examples)")
    ap.add_argument("--model", default="", help="an exported model folder")
    ap.add_argument("--checkpoint", default="", help="a training checkpoint prefix (train.py --out)")
    ap.add_argument("--tasks", nargs="+", default=["multi_key", "multi_value", "chain"])
    ap.add_argument("--length", type=int, default=512, help="context length (a multiple of --block)")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--block", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--copy", action="store_true", help="probe copying from a one-word cue instead of the tasks")
    args = ap.parse_args()
    if bool(args.model) == bool(args.checkpoint):
        raise SystemExit("give one of --model and --checkpoint")
    if args.block < 1 or args.length % args.block:
        raise SystemExit(f"--length ({args.length}) must be a multiple of --block ({args.block})")
    model = load_model(args.model, args.checkpoint)
    if args.copy:
        copy_probe(model, args.block, args.samples, args.seed)
        return
    if not args.losa:
        raise SystemExit("--losa is needed to write the task examples")
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            shard = os.path.join(tmp, f"{task}.bin")
            subprocess.run([args.losa, "tasks", "--tasks", task, "--count", str(args.samples), "--min-len",
                            str(args.length), "--max-len", str(args.length), "--seed", str(args.seed), "--out", shard],
                           check=True, capture_output=True)
            rows = {}
            for _, parts in read_shard(shard)[1]:
                for key, values in probe(model, parts[0], parts[1], args.block).items():
                    rows.setdefault(key, []).append(np.asarray(values, float))
            for key, values in rows.items():
                longest = max(len(v) for v in values)
                table = np.array([np.pad(v, (0, longest - len(v)), constant_values=np.nan) for v in values])
                cells = " ".join(f"{x:5.2f}" for x in np.nanmean(table, 0))
                print(f"{task:12s} {args.length:6d} {key:11s} {cells}", flush=True)


if __name__ == "__main__":
    main()
