#pragma once
// Rotary position embedding of Qwen3 (rotate-half, NeoX layout) with transformers' frequency
// scaling (linear, yarn, llama3).
#include <cstdint>
#include <vector>

#include "losa/runtime/model_config.hpp"

namespace losa::runtime {

/// RoPE's frequencies for one model: angle of pair i at position p = p * inv_freq[i], and
/// cos/sin are multiplied by attention_factor (yarn's mscale; 1 otherwise).
struct RopeTable {
  std::vector<double> inv_freq;  ///< [head_dim / 2], rounded to fp32 as transformers stores them
  double attention_factor = 1.0;
};

/// transformers' _compute_{default,linear_scaling,yarn,llama3}_parameters for `config`.
RopeTable make_rope_table(const ModelConfig& config);

/// Rotates x [num_heads, head_dim] at `position` in place: for i < D/2,
///   x[i]       <- x[i] cos - x[i + D/2] sin
///   x[i + D/2] <- x[i + D/2] cos + x[i] sin      (cos, sin scaled by attention_factor)
void apply_rope(const RopeTable& rope, int64_t position, int num_heads, int head_dim, float* x);

}  // namespace losa::runtime
