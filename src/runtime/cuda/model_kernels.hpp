#pragma once
// The small kernels of the Qwen3 forward on the GPU (DESIGN.md section 6), around the cuBLAS
// GEMMs: embedding rows, RMSNorm into bf16, per-head q/k RMSNorm + RoPE in place, SwiGLU, and
// the greedy pick. Activations: the residual stream x is fp32, GEMM operands are bf16.
// Host launchers; none synchronises (graph-capturable).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace losa::runtime::cuda {

using bf16 = __nv_bfloat16;

/// x[r, :] = float(table[tokens[r], :]); table [V, H] bf16. Token ids are checked on the host.
void launch_embed(const bf16* table, const int32_t* tokens, int64_t rows, int hidden, float* x, cudaStream_t stream);

/// y = x * rsqrt(mean(x^2) + eps) * w, in fp32, stored as bf16. x [rows, dim] fp32.
void launch_rms_norm(const float* x, const bf16* w, int64_t rows, int dim, float eps, bf16* y, cudaStream_t stream);

/// In place on qkv [rows, (Hq + 2 Hk) D]: each q and k head gets its RMSNorm (weights q_norm,
/// k_norm [D]) then RoPE (rotate-half) at position kv_len[row / rows_per_seq] + row %
/// rows_per_seq; angles and their cos/sin in double, as the CPU reference computes them.
/// inv_freq: [D/2] (fp32-rounded frequencies), cos/sin scaled by attention_factor.
struct QkNormRope {
  bf16* qkv = nullptr;
  const bf16* q_norm = nullptr;
  const bf16* k_norm = nullptr;
  const double* inv_freq = nullptr;
  const int32_t* kv_len = nullptr;  ///< [S] device: positions start at the sequence's length
  int rows_per_seq = 0;
  int num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  float eps = 1e-6f;
  double attention_factor = 1.0;
};
void launch_qk_norm_rope(const QkNormRope& p, int64_t rows, cudaStream_t stream);

/// act[r, i] = silu(gu[r, i]) * gu[r, I + i] (fp32 math), gu [rows, 2I] bf16 -> act [rows, I].
void launch_silu_mul(const bf16* gate_up, int64_t rows, int intermediate, bf16* act, cudaStream_t stream);

/// Greedy pick per row of logits [rows, vocab] fp32 over the first *candidates ids (device: the
/// sampler's vocab limit, read at run time so graphs stay valid): the argmax (ties to the lowest
/// id) and its softmax probability (temperature 1), as Sampler::sample does for temperature 0.
/// Rows whose sequence sits out (seq_mask[row / rows_per_seq] == 0) are skipped.
void launch_greedy(const float* logits, int64_t rows, int64_t vocab, const int64_t* candidates,
                   const uint8_t* seq_mask, int rows_per_seq, int32_t* tokens, float* confidence, cudaStream_t stream);

}  // namespace losa::runtime::cuda
