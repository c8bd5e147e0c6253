"""Exports a training checkpoint as an SDAR model folder (config.json, generation_config.json,
model.safetensors in bf16 with the real tensor names) that losa loads with --model DIR.

    python3 train/export.py --checkpoint CKPT_PREFIX --out models/losa-tasks-6m [--check]

--check also compares the exported weights, loaded into transformers' Qwen3ForCausalLM (SDAR's
math), with this repository's model on a block-causal input.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ModelShape, SdarModel  # noqa: E402
from train import load_checkpoint  # noqa: E402

EOS, MASK = 0, 1


def config_json(shape: ModelShape, block_size=4):
    return {
        "architectures": ["SDARForCausalLM"],
        "model_type": "sdar",
        "attention_bias": False,
        "hidden_act": "silu",
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "head_dim": shape.head_dim,
        "rms_norm_eps": shape.rms_norm_eps,
        "rope_theta": shape.rope_theta,
        "rope_scaling": None,
        "max_position_embeddings": 65536,
        "tie_word_embeddings": False,
        "vocab_size": shape.vocab_size,
        "block_size": block_size,
        "mask_token_id": MASK,
        "bos_token_id": EOS,
        "eos_token_id": EOS,
        "torch_dtype": "bfloat16",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    from safetensors.torch import save_file

    ckpt = load_checkpoint(args.checkpoint)
    if ckpt is None:
        sys.exit(f"no checkpoint parts at {args.checkpoint}.part*")
    shape = ModelShape(**ckpt["shape"])
    os.makedirs(args.out, exist_ok=True)
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in ckpt["model"].items()}
    save_file(tensors, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config_json(shape), f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": EOS, "eos_token_id": [EOS], "pad_token_id": EOS, "do_sample": False}, f, indent=2)
    print(f"exported step {ckpt['step']} to {args.out}")
    if args.check:
        check(shape, ckpt["model"])


def check(shape, state):
    """Our model vs transformers' Qwen3 on the same bf16-rounded weights, block-causal mask."""
    from transformers import Qwen3Config, Qwen3ForCausalLM
    state = {k: v.to(torch.bfloat16).float() for k, v in state.items()}
    ours = SdarModel(shape)
    ours.load_state_dict(state)
    cfg = Qwen3Config(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                      intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_hidden_layers,
                      num_attention_heads=shape.num_attention_heads, num_key_value_heads=shape.num_key_value_heads,
                      head_dim=shape.head_dim, rms_norm_eps=shape.rms_norm_eps, rope_theta=shape.rope_theta,
                      tie_word_embeddings=False, attn_implementation="eager")
    hf = Qwen3ForCausalLM(cfg)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    T, B = 37, 4
    tokens = torch.randint(2, shape.vocab_size, (T,))
    pos = torch.arange(T)
    allowed = (pos[None, :] // B) <= (pos[:, None] // B)
    with torch.no_grad():
        a = ours(tokens, pos, allowed)
        bias = torch.zeros(T, T).masked_fill(~allowed, float("-inf"))[None, None]
        b = hf(input_ids=tokens[None], position_ids=pos[None], attention_mask=bias).logits[0]
    err = (a - b).abs().max().item()
    print(f"max |ours - transformers| logits: {err:.2e}")
    assert err < 1e-3, err


if __name__ == "__main__":
    main()
