#pragma once
// The dense operations of a Qwen3 decoder layer on the CPU: fp32 activations, every dot product
// and norm accumulated in double (the reference: its error against a float64 PyTorch forward is
// at fp32 rounding level). Weights are decoded from their storage dtype row by row. Internal.
#include <cstdint>

#include "losa/runtime/weights.hpp"

namespace losa::runtime::detail {

/// y[r, o] = sum_i x[r, i] * w[o, i]: x [rows, in], w [out, in] (a Linear weight), y [rows, out].
/// Threads split the output features.
void linear(const float* x, int64_t rows, const TensorView& w, float* y, int threads);

/// RMSNorm of each of `rows` vectors of `dim`: y = x / sqrt(mean(x^2) + eps) * weight.
/// weight: [dim]. y may alias x.
void rms_norm(const float* x, int64_t rows, int64_t dim, const TensorView& weight, double eps,
              float* y);

/// a[i] = silu(gate[i]) * up[i] for n elements (SwiGLU's activation), in place in `gate`.
void silu_mul(float* gate, const float* up, int64_t n);

/// x[r, :] = embedding row tokens[r]; x [rows, hidden]. Token ids are checked against the vocab.
void embed(const TensorView& table, const int32_t* tokens, int64_t rows, float* x);

/// x[i] += y[i] for n elements (residual connections).
void add_in_place(float* x, const float* y, int64_t n);

}  // namespace losa::runtime::detail
