// Appending tokens to every sequence of a batch at its device-side length: copy the new keys and
// values into their reserved pages' slots, then recompute the key bounds of every page the
// append touched (a page partly filled before is recomputed over all its tokens, so no old bound
// is trusted). Lengths advance in a separate launch, after every layer has appended, so that
// all layers of a commit write at the same positions. All of it runs inside a CUDA graph.
#include "common.cuh"
#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "quantized_bounds.cuh"

namespace losa::cuda {
namespace {

template <typename T, int D>
__global__ void append_tokens_kernel(const __grid_constant__ AppendParams p) {
  wait_for_predecessor();
  const int token = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z, chunk = threadIdx.x;  // D / 8 chunks of 16 B
  if (p.seq_mask && !p.seq_mask[seq]) return;
  const int pos = p.kv_len[seq] + token, P = p.page_size;
  const int32_t* table = p.page_indices + p.page_indptr[seq];
  const size_t dst = ((static_cast<size_t>(table[pos / P]) * p.num_kv_heads + kvh) * P + pos % P) * D;
  const int64_t row = static_cast<int64_t>(seq) * p.num_tokens + token;
  reinterpret_cast<uint4*>(static_cast<T*>(p.keys) + dst)[chunk] =
      reinterpret_cast<const uint4*>(static_cast<const T*>(p.k.data) + row * p.k.stride + kvh * D)[chunk];
  reinterpret_cast<uint4*>(static_cast<T*>(p.values) + dst)[chunk] =
      reinterpret_cast<const uint4*>(static_cast<const T*>(p.v.data) + row * p.v.stride + kvh * D)[chunk];
}

template <typename T, int D>
__global__ void __launch_bounds__(D) refresh_bounds_kernel(const __grid_constant__ AppendParams p) {
  wait_for_predecessor();
  const int P = p.page_size, kvh = blockIdx.y, seq = blockIdx.z, d = threadIdx.x;
  if (p.seq_mask && !p.seq_mask[seq]) return;  // uniform over the CTA
  const int start = p.kv_len[seq], end = start + p.num_tokens;
  const int logical = start / P + blockIdx.x;
  if (logical * P >= end) return;  // uniform: this sequence touched fewer pages
  const int valid = min(P, end - logical * P);
  const int32_t page = p.page_indices[p.page_indptr[seq] + logical];
  const size_t page_head = static_cast<size_t>(page) * p.num_kv_heads + kvh;
  const T* keys = static_cast<const T*>(p.keys) + page_head * P * D;
  float lo = INFINITY, hi = -INFINITY;
  for (int s = 0; s < valid; ++s) {
    const float x = Elem<T>::to_float(keys[s * D + d]);
    lo = fminf(lo, x);
    hi = fmaxf(hi, x);
  }
  // Bounds of values already in T are exact in T.
  static_cast<T*>(p.key_min)[page_head * D + d] = Elem<T>::from_float(lo);
  static_cast<T*>(p.key_max)[page_head * D + d] = Elem<T>::from_float(hi);
  if (p.bounds8) {
    __shared__ float reduce[D / 32];
    const float scale = bound_scale_of<D>(fmaxf(fabsf(lo), fabsf(hi)), reduce);
    int8_t* q = p.bounds8 + page_head * 2 * D;
    q[d] = quantize_down(lo, scale);
    q[D + d] = quantize_up(hi, scale);
    if (d == 0) p.bound_scale[page_head] = scale;
  }
}

struct AdvanceParams {
  int32_t* kv_len;
  int num_seqs, num_tokens;
  const uint8_t* seq_mask;
};

__global__ void advance_lengths_kernel(const __grid_constant__ AdvanceParams p) {
  wait_for_predecessor();
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s < p.num_seqs && (!p.seq_mask || p.seq_mask[s])) p.kv_len[s] += p.num_tokens;
}

template <typename T, int D>
void launch(const AppendParams& p, cudaStream_t stream) {
  launch_kernel(append_tokens_kernel<T, D>, dim3(p.num_tokens, p.num_kv_heads, p.num_seqs), D / 8, 0, stream, p);
  check_launch("append_tokens_kernel");
  // A run of n tokens touches at most ceil(n / P) + 1 pages.
  const int pages = (p.num_tokens + p.page_size - 1) / p.page_size + 1;
  launch_kernel(refresh_bounds_kernel<T, D>, dim3(pages, p.num_kv_heads, p.num_seqs), D, 0, stream, p);
  check_launch("refresh_bounds_kernel");
}

}  // namespace

void launch_append(DType dtype, int head_dim, const AppendParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0 || p.num_seqs <= 0) return;
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, stream);
}

void launch_advance_lengths(int32_t* kv_len, int num_seqs, int num_tokens, const uint8_t* seq_mask,
                            cudaStream_t stream) {
  if (num_seqs <= 0 || num_tokens == 0) return;
  launch_kernel(advance_lengths_kernel, dim3((num_seqs + 127) / 128), dim3(128), 0, stream,
                AdvanceParams{kv_len, num_seqs, num_tokens, seq_mask});
  check_launch("advance_lengths_kernel");
}

}  // namespace losa::cuda
