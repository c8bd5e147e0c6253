// Appending tokens to a sequence's pages: copy the new keys and values into their slots, then
// recompute the key bounds of every page the append touched (a page partly filled before the
// append is recomputed over all its tokens, so no old bound is trusted).
#include "common.cuh"
#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"

namespace losa::cuda {
namespace {

template <typename T, int D>
__global__ void append_tokens_kernel(const __grid_constant__ AppendParams p) {
  const int token = blockIdx.x, kvh = blockIdx.y, chunk = threadIdx.x;  // D / 8 chunks of 16 B
  const int pos = p.start + token, P = p.page_size;
  const size_t dst = ((static_cast<size_t>(p.page_table[pos / P]) * p.num_kv_heads + kvh) * P + pos % P) * D;
  const size_t src = (static_cast<size_t>(token) * p.num_kv_heads + kvh) * D;
  reinterpret_cast<uint4*>(static_cast<T*>(p.keys) + dst)[chunk] =
      reinterpret_cast<const uint4*>(static_cast<const T*>(p.k) + src)[chunk];
  reinterpret_cast<uint4*>(static_cast<T*>(p.values) + dst)[chunk] =
      reinterpret_cast<const uint4*>(static_cast<const T*>(p.v) + src)[chunk];
}

template <typename T, int D>
__global__ void refresh_bounds_kernel(const __grid_constant__ AppendParams p) {
  const int P = p.page_size, kvh = blockIdx.y, d = threadIdx.x;
  const int logical = p.start / P + blockIdx.x;
  const int valid = min(P, p.start + p.num_tokens - logical * P);
  const size_t page_base = (static_cast<size_t>(p.page_table[logical]) * p.num_kv_heads + kvh);
  const T* keys = static_cast<const T*>(p.keys) + page_base * P * D;
  float lo = INFINITY, hi = -INFINITY;
  for (int s = 0; s < valid; ++s) {
    const float x = Elem<T>::to_float(keys[s * D + d]);
    lo = fminf(lo, x);
    hi = fmaxf(hi, x);
  }
  // Bounds of values already in T are exact in T.
  static_cast<T*>(p.key_min)[page_base * D + d] = Elem<T>::from_float(lo);
  static_cast<T*>(p.key_max)[page_base * D + d] = Elem<T>::from_float(hi);
}

template <typename T, int D>
void launch(const AppendParams& p, cudaStream_t stream) {
  append_tokens_kernel<T, D><<<dim3(p.num_tokens, p.num_kv_heads), D / 8, 0, stream>>>(p);
  check_launch("append_tokens_kernel");
  const int first = p.start / p.page_size, last = (p.start + p.num_tokens - 1) / p.page_size;
  refresh_bounds_kernel<T, D><<<dim3(last - first + 1, p.num_kv_heads), D, 0, stream>>>(p);
  check_launch("refresh_bounds_kernel");
}

}  // namespace

void launch_append(DType dtype, int head_dim, const AppendParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0) return;
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, stream);
}

}  // namespace losa::cuda
