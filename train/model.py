"""The SDAR architecture (Qwen3 decoder, DESIGN.md section 6) in plain PyTorch, for training.

Tensor names equal the Hugging Face checkpoint's, so `state_dict()` exports as an SDAR folder
(export.py) that losa's runtime loads. The math equals Qwen3ForCausalLM's: RMSNorm in fp32,
q/k RMSNorm per head before rotate-half RoPE, GQA, SwiGLU, no biases, untied lm_head; logits at
position i predict token i (no shift). Attention takes an arbitrary mask (block-causal over clean
blocks plus the noisy copy of the answer, see data.py) as a dense boolean mask, with SDPA.
"""
import json
import os
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelShape:
    vocab_size: int = 512
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    head_dim: int = 64
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(positions, head_dim, theta):
    """cos, sin [T, head_dim] for rotate-half RoPE at integer positions [T]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    # x [1, H, T, D]
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.s = s
        self.q_proj = nn.Linear(s.hidden_size, s.num_attention_heads * s.head_dim, bias=False)
        self.k_proj = nn.Linear(s.hidden_size, s.num_key_value_heads * s.head_dim, bias=False)
        self.v_proj = nn.Linear(s.hidden_size, s.num_key_value_heads * s.head_dim, bias=False)
        self.o_proj = nn.Linear(s.num_attention_heads * s.head_dim, s.hidden_size, bias=False)
        self.q_norm = RMSNorm(s.head_dim, s.rms_norm_eps)
        self.k_norm = RMSNorm(s.head_dim, s.rms_norm_eps)

    def forward(self, x, cos, sin, mask):
        s = self.s
        T = x.shape[1]
        q = self.q_norm(self.q_proj(x).view(1, T, s.num_attention_heads, s.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(1, T, s.num_key_value_heads, s.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(1, T, s.num_key_value_heads, s.head_dim).transpose(1, 2)
        # The norms return fp32 under autocast while v is bf16: attention gets one dtype.
        q, k = apply_rope(q, cos, sin).to(v.dtype), apply_rope(k, cos, sin).to(v.dtype)
        group = s.num_attention_heads // s.num_key_value_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None, None])
        return self.o_proj(o.transpose(1, 2).reshape(1, T, -1))


class MLP(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.gate_proj = nn.Linear(s.hidden_size, s.intermediate_size, bias=False)
        self.up_proj = nn.Linear(s.hidden_size, s.intermediate_size, bias=False)
        self.down_proj = nn.Linear(s.intermediate_size, s.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.input_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.self_attn = Attention(s)
        self.post_attention_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.mlp = MLP(s)

    def forward(self, x, cos, sin, mask):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class Backbone(nn.Module):
    def __init__(self, s: ModelShape):
        super().__init__()
        self.embed_tokens = nn.Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList([Layer(s) for _ in range(s.num_hidden_layers)])
        self.norm = RMSNorm(s.hidden_size, s.rms_norm_eps)


class SdarModel(nn.Module):
    """Qwen3ForCausalLM's module tree: model.{embed_tokens,layers,norm}, lm_head."""

    def __init__(self, s: ModelShape):
        super().__init__()
        self.shape = s
        self.model = Backbone(s)
        self.lm_head = nn.Linear(s.hidden_size, s.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def hidden(self, tokens, positions, mask):
        """tokens, positions [T] -> final-norm hidden states [T, hidden]."""
        s = self.shape
        cos, sin = rope_cos_sin(positions, s.head_dim, s.rope_theta)
        x = self.model.embed_tokens(tokens)[None]
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.model.norm(x)[0]

    def forward(self, tokens, positions, mask):
        return self.lm_head(self.hidden(tokens, positions, mask))


def folder_shape(path):
    """The ModelShape of an exported model folder (its config.json)."""
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    return ModelShape(**{k: cfg[k] for k in ModelShape.__dataclass_fields__})


def load_folder_weights(model, path):
    """An exported folder's model.safetensors into `model`, as fp32."""
    from safetensors.torch import load_file  # only the folders need safetensors
    model.load_state_dict({k: v.float() for k, v in load_file(os.path.join(path, "model.safetensors")).items()})


def grow_depth(state, new_layers):
    """The state dict of a model deepened to `new_layers` layers that computes the same function:
    old layer j keeps its place in order, spread evenly; each added layer copies the layer before it
    with its two output projections (o_proj, down_proj) zeroed, so its residual branches add nothing
    until training moves them. Gives a deeper model that starts where the shallow one ended."""
    prefix = "model.layers."
    old_layers = 1 + max(int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix))
    if new_layers < old_layers:
        raise ValueError(f"grow_depth: {new_layers} layers is fewer than the model's {old_layers}")
    place = {j: (j * new_layers) // old_layers for j in range(old_layers)}  # old j -> new index
    source = {}  # new index -> (old layer copied, added?)
    for i in range(new_layers):
        j = max(k for k in range(old_layers) if place[k] <= i)
        source[i] = (j, place[j] != i)
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    for i, (j, added) in source.items():
        for name, tensor in state.items():
            if not name.startswith(f"{prefix}{j}."):
                continue
            rest = name[len(f"{prefix}{j}."):]
            zero = added and rest in ("self_attn.o_proj.weight", "mlp.down_proj.weight")
            out[f"{prefix}{i}.{rest}"] = torch.zeros_like(tensor) if zero else tensor.clone()
    return out
