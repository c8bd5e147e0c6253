#pragma once
// The model's weights on the GPU, bf16, laid out for the forward: q/k/v stacked into one matrix
// (one GEMM yields the fused QKV rows the attention engine reads as strided slices) and gate/up
// stacked likewise.
#include <vector>

#include "losa/cuda/device_buffer.hpp"
#include "losa/runtime/weights.hpp"

namespace losa::runtime::cuda {

struct DeviceLayerWeights {
  losa::cuda::DeviceBuffer input_norm, post_norm, q_norm, k_norm;  // [H], [H], [D], [D]
  losa::cuda::DeviceBuffer qkv;        // [(Hq + 2 Hk) D, H]
  losa::cuda::DeviceBuffer o;          // [H, Hq D]
  losa::cuda::DeviceBuffer gate_up;    // [2 I, H]
  losa::cuda::DeviceBuffer down;       // [H, I]
};

struct DeviceWeights {
  losa::cuda::DeviceBuffer embed;  // [V, H]
  losa::cuda::DeviceBuffer norm;   // [H]
  losa::cuda::DeviceBuffer lm_head_storage;  // [V, H]; empty when tied to embed
  std::vector<DeviceLayerWeights> layers;
  int64_t bytes = 0;

  const void* lm_head() const { return lm_head_storage.bytes() ? lm_head_storage.data() : embed.data(); }
};

/// Bytes the device copy of `weights` takes (checked against the GPU before uploading).
int64_t device_weight_bytes(const Weights& weights);

/// Uploads every tensor as bf16 (f16 and f32 are rounded to nearest even on the host).
DeviceWeights upload_weights(const Weights& weights);

}  // namespace losa::runtime::cuda
