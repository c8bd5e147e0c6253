// LoSA's change score per block token and the active-set rules (top k_active, tau, delta_min), or every
// token active for a full step. One CTA per (sequence, token) reduces its change; the last CTA
// of a sequence to finish (an atomic ticket per sequence) selects, so the whole batch is one
// launch with no host round trip.
#include "common.cuh"
#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"

namespace losa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlock = 64;  // block sizes the selection handles (B = 16, 32 in practice)

// sum |x - ref|^2 and |ref|^2 over `count` elements (a multiple of 8), 16-byte loads.
template <typename T>
__device__ void accumulate_change(const T* x, const T* ref, int count, float& diff, float& norm) {
  for (int c = threadIdx.x * 8; c < count; c += kThreads * 8) {
    const uint4 xv = *reinterpret_cast<const uint4*>(x + c);
    const uint4 rv = *reinterpret_cast<const uint4*>(ref + c);
    const uint32_t xs[4] = {xv.x, xv.y, xv.z, xv.w}, rs[4] = {rv.x, rv.y, rv.z, rv.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 a = Elem<T>::unpack(xs[i]), r = Elem<T>::unpack(rs[i]);
      diff += (a.x - r.x) * (a.x - r.x) + (a.y - r.y) * (a.y - r.y);
      norm += r.x * r.x + r.y * r.y;
    }
  }
}

__device__ float2 block_sum2(float a, float b) {
  __shared__ float red[2][kThreads / 32];
  a = warp_sum(a);
  b = warp_sum(b);
  if (threadIdx.x % 32 == 0) {
    red[0][threadIdx.x / 32] = a;
    red[1][threadIdx.x / 32] = b;
  }
  __syncthreads();
  float sa = 0.0f, sb = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) {
    sa += red[0][w];
    sb += red[1][w];
  }
  __syncthreads();
  return make_float2(sa, sb);
}

__device__ double normalised(float diff, float norm) {
  if (norm > 0.0f) return static_cast<double>(diff) / norm;
  return diff > 0.0f ? INFINITY : 0.0;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) active_set_kernel(const __grid_constant__ ActiveSetParams p) {
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  allow_successor();
  const int B = p.block_size;
  const int seq = p.rule == 0 ? blockIdx.x : blockIdx.x / B;
  if (p.seq_mask && !p.seq_mask[seq]) {  // sitting out: no token is fresh, nothing else changes
    if (p.rule == 0 || blockIdx.x % B == 0) {
      for (int i = threadIdx.x; i < B; i += blockDim.x) p.token_slot[seq * B + i] = -1;
      if (threadIdx.x == 0) p.count[seq] = 0;
    }
    return;
  }
  if (p.rule != 0) {
    const int token = blockIdx.x % B;
    const int64_t row = static_cast<int64_t>(seq) * B + token;  // token row in the batch
    const T* q = static_cast<const T*>(p.q.data) + row * p.q.stride;
    const T* q_ref = static_cast<const T*>(p.q_ref) + row * p.num_q_heads * D;
    float diff = 0.0f, norm = 0.0f;
    accumulate_change(q, q_ref, p.num_q_heads * D, diff, norm);
    const float2 q_sum = block_sum2(diff, norm);
    double delta = normalised(q_sum.x, q_sum.y);
    if (p.k_ref) {
      const int64_t ref_off = row * p.num_kv_heads * D;
      float kd = 0.0f, kn = 0.0f, vd = 0.0f, vn = 0.0f;
      accumulate_change(static_cast<const T*>(p.k.data) + row * p.k.stride, static_cast<const T*>(p.k_ref) + ref_off,
                        p.num_kv_heads * D, kd, kn);
      accumulate_change(static_cast<const T*>(p.v.data) + row * p.v.stride, static_cast<const T*>(p.v_ref) + ref_off,
                        p.num_kv_heads * D, vd, vn);
      const float2 k_sum = block_sum2(kd, kn), v_sum = block_sum2(vd, vn);
      delta += normalised(k_sum.x, k_sum.y) + normalised(v_sum.x, v_sum.y);
    }
    if (threadIdx.x == 0) p.delta[row] = delta;
    if (!last_to_arrive(&p.ticket[seq], static_cast<unsigned>(B))) return;  // the last token's CTA selects
  }

  __shared__ double d[kMaxBlock];
  __shared__ int chosen[kMaxBlock];
  const int i = threadIdx.x;
  if (i < B) d[i] = p.rule == 0 ? 1.0 : static_cast<volatile double*>(p.delta)[seq * B + i];
  __syncthreads();
  if (i < B) {
    bool active = true;
    if (p.rule != 0) {
      // Rank among the changed tokens by (score desc, index asc), and the change of those
      // ranked before: the order a sort would give, without sorting.
      int rank = 0;
      double before = 0.0, total = 0.0;
      for (int j = 0; j < B; ++j) {
        if (!(d[j] > 0.0)) continue;
        total += d[j];
        if (d[j] > d[i] || (d[j] == d[i] && j < i)) {
          ++rank;
          before += d[j];
        }
      }
      active = d[i] > 0.0 && (p.rule == 1   ? rank < p.k_active
                              : p.rule == 2 ? before < p.tau * total
                                            : d[i] >= p.delta_min);
    }
    chosen[i] = active;
  }
  __syncthreads();
  if (i < B) {
    int pos = 0;
    for (int j = 0; j < i; ++j) pos += chosen[j];
    if (chosen[i]) p.tokens[seq * B + pos] = i;
    p.token_slot[seq * B + i] = chosen[i] ? pos : -1;
    if (i == B - 1) p.count[seq] = pos + chosen[i];
  }
}

template <typename T, int D>
void launch(const ActiveSetParams& p, int num_seqs, cudaStream_t stream) {
  launch_kernel(active_set_kernel<T, D>, num_seqs * (p.rule == 0 ? 1 : p.block_size), kThreads, 0, stream, p);
  check_launch("active_set_kernel");
}

}  // namespace

void launch_active_set(DType dtype, int head_dim, const ActiveSetParams& p, int num_seqs, cudaStream_t stream) {
  if (p.block_size < 1 || p.block_size > kMaxBlock)
    throw ArgumentError("launch_active_set", "block_size",
                        "must be in [1, 64] on the GPU, got " + std::to_string(p.block_size));
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, num_seqs, stream);
}

}  // namespace losa::cuda
