"""Training rows for SDAR's block-diffusion objective, from `losa tasks --out` shards.

One example (prompt P tokens, answer ending in eos, block size B; then further questions and
answers about the same context) becomes, as decoding sees it (DESIGN.md section 6):
  clean:  the prompt, the answer padded with eos to a block boundary (decoding stops after the
          block holding eos), each further question and its padded answer (N tokens), positions
          0..N-1, block-causal (a token sees its own block and every earlier one);
  noisy:  a copy of the blocks from s = floor(P/B)*B on, positions s..N-1: read tokens (the
          prompt's tail, questions) unmasked, answer tokens replaced by the mask token with
          probability t ~ U(0, 1) drawn per block (at least one per block). A noisy token sees the
          clean blocks before its own and the noisy tokens of its own block: exactly what a
          denoising step computes from the cache and the block.
With lm=True the noisy copy starts at position 0 instead: every block of the prompt is noised
too (all its tokens are candidates) and predicted from the clean blocks before it, SDAR's
pretraining objective. The filler repeats sentences, so this rewards copying from context
everywhere and teaches the retrieval circuit far faster than the few answer tokens alone.
The loss is cross-entropy at the masked noisy positions, answers and prompt averaged apart. Examples are packed into rows of a
fixed length (each its own document, no attention across documents); a row is attended in
segments cut at document boundaries (Row.segments), each with a dense mask, so a row of short
documents costs what its documents cost, not the square of the row.
"""
import struct

import numpy as np
import torch

MASK = 1
EOS = 0
ANSWER, TERMINATOR = 1, 2  # answer flags: a generated token; the eos that ends an answer (not its padding)
TASKS = ["single_needle", "multi_key", "multi_value", "chain", "frequent", "copy"]
COPY_TASK = TASKS.index("copy")  # training only (copy_examples), not a task of losa eval
# The suite's vocabulary (include/losa/eval/tasks.hpp, src/eval/tasks.cpp): structure words below
# FIRST_CONTENT, names up to FIRST_FILLER, filler words above.
FIRST_CONTENT, FIRST_FILLER = 32, 256
KEY, QUESTION, FIND = 3, 8, 9


def read_shard(path):
    """(vocab, [(task, [parts as int32 arrays])]) of a LOSATSK2 file (tools/tasks.cpp): parts are
    prompt, answer, question, answer, ..."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"LOSATSK2":
        raise ValueError(f"{path}: not a losa tasks shard (LOSATSK2)")
    vocab, count = struct.unpack_from("<II", raw, 8)
    off, out = 16, []
    for _ in range(count):
        task, n = struct.unpack_from("<II", raw, off)
        lens = struct.unpack_from(f"<{n}I", raw, off + 8)
        off += 8 + 4 * n
        parts = []
        for ln in lens:
            parts.append(np.frombuffer(raw, dtype="<u2", count=ln, offset=off).astype(np.int32))
            off += 2 * ln
        out.append((task, parts))
    return vocab, out


def copy_examples(rng, count, min_len, max_len, vocab=512, questions=6, cue="anywhere"):
    """`count` copy documents of about min_len..max_len tokens (log-uniform): a passage of distinct
    random words, then questions, each a cue of 1..3 words from a random place in the passage
    answered by the 4..24 words that follow it there. A masked answer word is decided only by
    finding the last visible word (the cue's end, or a word already unmasked) in the passage and
    copying the word that many places after it: the induction step that multi_key, multi_value
    and chain need after their first word, with every answer word a target. The cue starts
    anywhere, so no position-based shortcut answers it (bench/NOTES.md, "Sixth round").
    cue="start" gives the first version (the cue is the passage's first 1..n/4 words, the answer
    all the rest, one question): a model learns it by position, not by content, and the skill
    does not transfer; kept to reproduce the calls that used it.
    cue="question" asks as the tasks do: each cue is `question find` and one name (a word below
    FIRST_FILLER) of the passage, answered by the words after it; the passage mixes names and
    filler words, as the tasks' statements sit among filler. The copy skill then has the key
    lookup's question form (the sixth round's i1 copies from a bare cue but never after
    `question find`: bench/NOTES.md)."""
    if cue not in ("anywhere", "start", "question"):
        raise ValueError(f"copy cue must be 'anywhere', 'start' or 'question', not {cue!r}")
    out = []
    words = np.arange(FIRST_CONTENT, vocab, dtype=np.int32)
    for _ in range(count):
        total = int(np.exp(rng.uniform(np.log(min_len), np.log(max_len + 1))))
        if cue == "start":
            n = int(np.clip(total * 4 // 5, 8, len(words)))
            passage = rng.choice(words, n, replace=False)
            m = int(rng.integers(1, max(2, n // 4)))
            out.append((COPY_TASK, [np.concatenate([passage, passage[:m]]), np.append(passage[m:], EOS).astype(np.int32)]))
            continue
        n = int(np.clip(total, 32, len(words)))
        passage = rng.choice(words, n, replace=False)
        parts = []
        if cue == "question":
            names = np.flatnonzero(passage < FIRST_FILLER)
            names = names[names < n - 4]  # at least 4 words follow the asked name
            for q, at in enumerate(rng.choice(names, min(questions, len(names)), replace=False) if len(names) else []):
                answer_len = int(min(rng.integers(4, 25), n - 1 - at))
                ask = np.array([QUESTION, FIND, passage[at]], dtype=np.int32)
                parts.append(np.concatenate([passage, ask]) if q == 0 else ask)
                parts.append(np.append(passage[at + 1:at + 1 + answer_len], EOS).astype(np.int32))
            if parts:
                out.append((COPY_TASK, parts))
            continue
        for q in range(questions):
            cue_len, answer_len = int(rng.integers(1, 4)), int(rng.integers(4, 25))
            at = int(rng.integers(0, n - cue_len - answer_len))
            cue_words = passage[at:at + cue_len]
            parts.append(np.concatenate([passage, cue_words]) if q == 0 else cue_words.astype(np.int32))
            parts.append(np.append(passage[at + cue_len:at + cue_len + answer_len], EOS).astype(np.int32))
        out.append((COPY_TASK, parts))
    return out


def example_tokens(parts, block, rng, lm=False):
    """tokens, positions, block ids, noisy flags, targets (-100: no loss), answer flags (0, ANSWER,
    TERMINATOR) of one example."""
    pieces, generated = [], []
    for i, part in enumerate(parts):
        pieces.append(part)
        answer = i % 2 == 1
        flags = np.full(len(part), ANSWER if answer else 0, np.int8)
        ends = np.flatnonzero(part == EOS) if answer else []
        if len(ends):
            flags[ends[0]] = TERMINATOR
        generated.append(flags)
        if answer:  # eos up to the block boundary
            pad = -sum(len(p) for p in pieces) % block
            pieces.append(np.full(pad, EOS, np.int32))
            generated.append(np.full(pad, ANSWER, np.int8))
    full = np.concatenate(pieces)
    gen_all = np.concatenate(generated)
    n_clean = len(full)
    P = len(parts[0])
    start = 0 if lm else (P // block) * block
    noisy = full[start:].copy()
    target = np.full(len(noisy), -100, np.int64)
    gen = gen_all[start:]
    for b0 in range(0, len(noisy), block):
        sl = slice(b0, b0 + block)
        cand = np.nonzero(gen[sl])[0] + b0
        if len(cand) == 0:  # a block of read tokens only: noised for the lm objective
            if not lm:
                continue
            cand = np.arange(b0, min(b0 + block, len(noisy)))
        t = rng.random()
        pick = cand[rng.random(len(cand)) < t]
        if len(pick) == 0:
            pick = cand[rng.integers(len(cand)):][:1]
        target[pick] = noisy[pick]
        noisy[pick] = MASK
    tokens = np.concatenate([full, noisy])
    positions = np.concatenate([np.arange(n_clean), np.arange(start, n_clean)])
    is_noisy = np.concatenate([np.zeros(n_clean, bool), np.ones(len(noisy), bool)])
    targets = np.concatenate([np.full(n_clean, -100, np.int64), target])
    answers = np.concatenate([np.zeros(n_clean, np.int8), gen])
    return tokens, positions, positions // block, is_noisy, targets, answers


class Row:
    """One packed row: per-token arrays of fixed length."""

    def __init__(self, length):
        self.length = length
        self.tokens = np.zeros(length, np.int64)
        self.positions = np.zeros(length, np.int64)
        self.blocks = np.zeros(length, np.int64)
        self.noisy = np.zeros(length, bool)
        self.docs = np.zeros(length, np.int64)
        self.targets = np.full(length, -100, np.int64)
        self.answers = np.zeros(length, np.int8)  # 0 prompt, ANSWER, TERMINATOR (an answer's first eos)
        self.tasks = np.full(length, -1, np.int64)
        self.context_lens = np.zeros(length, np.int64)  # the prompt length of each token's example
        self.used = 0
        self.ndocs = 0

    def add(self, parts, task, context_len):
        n = len(parts[0])
        if self.used + n > self.length:
            return False
        sl = slice(self.used, self.used + n)
        (self.tokens[sl], self.positions[sl], self.blocks[sl], self.noisy[sl], self.targets[sl],
         self.answers[sl]) = parts
        self.docs[sl] = self.ndocs
        self.tasks[sl] = task
        self.context_lens[sl] = context_len
        self.used += n
        self.ndocs += 1
        return True

    def close(self):
        # The unused tail: one more document of pad tokens that sees only itself, no loss.
        sl = slice(self.used, self.length)
        self.docs[sl] = self.ndocs
        self.positions[sl] = np.arange(self.length - self.used)
        self.blocks[sl] = 0
        return self

    def segments(self, longest):
        """[start, end) spans covering the used tokens, cut at document boundaries, each at most
        `longest` tokens unless one document is longer. The unused tail has no loss and is left
        out; attention never crosses documents, so the spans can be attended one by one."""
        starts = np.flatnonzero(np.diff(self.docs[:self.used])) + 1
        bounds = [0, *starts.tolist(), self.used]
        spans, begin = [], 0
        for prev, end in zip(bounds[1:-1], bounds[2:]):
            if end - begin > longest:
                spans.append((begin, prev))
                begin = prev
        if self.used:
            spans.append((begin, self.used))
        return spans

    def to(self, device):
        t = lambda a: torch.from_numpy(a).to(device, non_blocking=True)
        return dict(tokens=t(self.tokens), positions=t(self.positions), blocks=t(self.blocks),
                    noisy=t(self.noisy), docs=t(self.docs), targets=t(self.targets), answers=t(self.answers),
                    tasks=t(self.tasks), context_lens=t(self.context_lens))


def pack_rows(examples, row_len, block_sizes, rng, lm_max_len=0):
    """Packs examples (task, parts) in order into rows of row_len tokens, each example
    with a block size drawn from block_sizes; prompts up to lm_max_len tokens get the lm objective."""
    rows, row = [], Row(row_len)
    for task, example_parts in examples:
        lm = len(example_parts[0]) <= lm_max_len
        parts = example_tokens(example_parts, int(rng.choice(block_sizes)), rng, lm)
        if len(parts[0]) > row_len:  # a long context with many answers: ask fewer questions
            parts = example_tokens(example_parts[:2], int(rng.choice(block_sizes)), rng)  # no lm
            if len(parts[0]) > row_len:
                raise ValueError(f"an example of {len(parts[0])} tokens does not fit a row of {row_len}")
        context_len = len(example_parts[0])
        if not row.add(parts, task, context_len):
            rows.append(row.close())
            row = Row(row_len)
            row.add(parts, task, context_len)
    if row.used:
        rows.append(row.close())
    return rows


def dense_mask(row, begin=0, end=None):
    """The boolean [T, T] attention rule of the row's tokens begin..end (a span of whole documents):
    True where query q sees key kv."""
    sl = slice(begin, row["tokens"].shape[0] if end is None else end)
    docs, blocks, noisy = row["docs"][sl], row["blocks"][sl], row["noisy"][sl]
    same = docs[:, None] == docs[None, :]
    clean_q, clean_kv = ~noisy[:, None], ~noisy[None, :]
    noisy_q, noisy_kv = noisy[:, None], noisy[None, :]
    bq, bkv = blocks[:, None], blocks[None, :]
    clean_clean = clean_q & clean_kv & (bkv <= bq)
    noisy_clean = noisy_q & clean_kv & (bkv < bq)
    noisy_noisy = noisy_q & noisy_kv & (bkv == bq)
    return same & (clean_clean | noisy_clean | noisy_noisy)
