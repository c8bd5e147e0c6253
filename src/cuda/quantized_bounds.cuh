#pragma once
// Device side of the 8-bit page bounds (losa/bounds8.hpp): the per-page scale is a block-wide
// maximum over the head dim, one thread per dim.
#include "common.cuh"
#include "losa/bounds8.hpp"

namespace losa::cuda {

/// bound8_scale of the largest of `value` over the D threads of the block (D a multiple of 32).
template <int D>
__device__ __forceinline__ float bound_scale_of(float value, float (&reduce)[D / 32]) {
  value = warp_max(value);
  if (threadIdx.x % 32 == 0) reduce[threadIdx.x / 32] = value;
  __syncthreads();
  float m = reduce[0];
#pragma unroll
  for (int w = 1; w < D / 32; ++w) m = fmaxf(m, reduce[w]);
  return bound8_scale(m);
}

__device__ __forceinline__ int8_t quantize_down(float x, float scale) { return bound8_down(x, scale); }
__device__ __forceinline__ int8_t quantize_up(float x, float scale) { return bound8_up(x, scale); }

}  // namespace losa::cuda
