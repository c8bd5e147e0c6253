// The end of a layer-step. One CTA per (token, KV head) stages that head's block keys and values
// in shared memory once; each of its warps then finishes one (token, head) row:
//   prefix part: merge of the splits' partial states for tokens computed this step (written to
//                the cache with the reference query, keys and values), else the cached state;
//   block part:  dense attention over the block's own B keys (online softmax);
//   output:      the LSE merge of the two.
#include "common.cuh"
#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"

namespace losa::cuda {
namespace {

constexpr int kMaxWarps = 8;

template <typename T, int N>
__device__ __forceinline__ void load_row(const T* src, float (&x)[N]) {
#pragma unroll
  for (int i = 0; i < N; i += 2) {
    const float2 v = Elem<T>::unpack(*reinterpret_cast<const uint32_t*>(src + i));
    x[i] = v.x;
    x[i + 1] = v.y;
  }
}

template <typename T, int N>
__device__ __forceinline__ void copy_row(const T* src, T* dst) {
#pragma unroll
  for (int i = 0; i < N; i += 2)
    *reinterpret_cast<uint32_t*>(dst + i) = *reinterpret_cast<const uint32_t*>(src + i);
}

template <typename T, int D>
__global__ void __launch_bounds__(kMaxWarps * 32)
    finalize_kernel(const __grid_constant__ FinalizeParams p) {
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  allow_successor();
  constexpr int kPer = D / 32;                               // elements per lane, contiguous
  extern __shared__ __align__(16) unsigned char block_kv[];  // keys then values, [B, D] each
  const int Hq = p.num_q_heads, Hk = p.num_kv_heads, group = Hq / Hk, B = p.block_size;
  const int token = blockIdx.x / Hk, kvh = blockIdx.x % Hk;
  T* k_s = reinterpret_cast<T*>(block_kv);
  T* v_s = k_s + B * D;
  for (int c = threadIdx.x; c < B * D / 8; c += blockDim.x) {
    const int j = c / (D / 8), col = (c % (D / 8)) * 8;
    const size_t src = (static_cast<size_t>(j) * Hk + kvh) * D + col;
    *reinterpret_cast<uint4*>(k_s + j * D + col) =
        *reinterpret_cast<const uint4*>(static_cast<const T*>(p.k_blk) + src);
    *reinterpret_cast<uint4*>(v_s + j * D + col) =
        *reinterpret_cast<const uint4*>(static_cast<const T*>(p.v_blk) + src);
  }
  __syncthreads();
  const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int g = threadIdx.x / 32; g < group; g += warps) {
    const int head = kvh * group + g, row = token * Hq + head;
    const int d0 = lane * kPer;
    const size_t q_off = static_cast<size_t>(row) * D + d0;
    const size_t kv_off = (static_cast<size_t>(token) * Hk + kvh) * D + d0;

    float q[kPer];
    load_row<T, kPer>(static_cast<const T*>(p.q) + q_off, q);

    // Prefix part.
    float op[kPer], lse_p;
    const int slot = p.active.token_slot[token];
    if (slot >= 0) {
      lse_p = -INFINITY;
#pragma unroll
      for (int i = 0; i < kPer; ++i) op[i] = 0.0f;
      if (p.has_prefix) {
        // Lane s reads split s's lse (all splits at once, not one dependent load after another),
        // the warp finds the max and each split's weight; the outputs are then summed with
        // independent loads in flight.
        const int r = slot * group + g;
        const size_t stride = static_cast<size_t>(p.max_rows);
        const size_t first = static_cast<size_t>(kvh) * p.num_splits * stride + r;
        float m = -INFINITY;
        for (int s = lane; s < p.num_splits; s += 32)
          m = fmaxf(m, p.partial_lse[first + s * stride]);
        m = warp_max(m);
        if (m != -INFINITY) {
          float sum = 0.0f;
          for (int s0 = 0; s0 < p.num_splits; s0 += 32) {
            const int s = s0 + lane;
            const float w_lane =
                s < p.num_splits ? expf(p.partial_lse[first + s * stride] - m) : 0.0f;
            sum += warp_sum(w_lane);
            const int count = min(32, p.num_splits - s0);
#pragma unroll 8
            for (int i = 0; i < count; ++i) {
              const float w = __shfl_sync(0xffffffffu, w_lane, i);
              const float* po = p.partial_o + (first + (s0 + i) * stride) * D + d0;
              float v[kPer];
              if constexpr (kPer == 4) {
                const float4 x = *reinterpret_cast<const float4*>(po);
                v[0] = x.x;
                v[1] = x.y;
                v[2] = x.z;
                v[3] = x.w;
              } else {
                const float2 x = *reinterpret_cast<const float2*>(po);
                v[0] = x.x;
                v[1] = x.y;
              }
#pragma unroll
              for (int e = 0; e < kPer; ++e) op[e] += w * v[e];  // an empty split has w = 0, o = 0
            }
          }
#pragma unroll
          for (int i = 0; i < kPer; ++i) op[i] /= sum;
          lse_p = m + logf(sum);
        }
      }
#pragma unroll
      for (int i = 0; i < kPer; ++i) p.prefix_o[q_off + i] = op[i];
      if (lane == 0) p.prefix_lse[row] = lse_p;
      if (p.q_ref)
        copy_row<T, kPer>(static_cast<const T*>(p.q) + q_off, static_cast<T*>(p.q_ref) + q_off);
      if (p.k_ref && g == 0) {
        copy_row<T, kPer>(static_cast<const T*>(p.k_blk) + kv_off,
                          static_cast<T*>(p.k_ref) + kv_off);
        copy_row<T, kPer>(static_cast<const T*>(p.v_blk) + kv_off,
                          static_cast<T*>(p.v_ref) + kv_off);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kPer; ++i) op[i] = p.prefix_o[q_off + i];
      lse_p = p.prefix_lse[row];
    }

    // Block part: online softmax over the block's keys.
    float m_b = -INFINITY, l_b = 0.0f, ob[kPer];
#pragma unroll
    for (int i = 0; i < kPer; ++i) ob[i] = 0.0f;
    for (int j = 0; j < B; ++j) {
      float k[kPer], v[kPer];
      load_row<T, kPer>(k_s + j * D + d0, k);
      load_row<T, kPer>(v_s + j * D + d0, v);
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < kPer; ++i) dot += q[i] * k[i];
      const float s = warp_sum(dot) * p.scale;
      const float m_new = fmaxf(m_b, s);
      const float alpha = expf(m_b - m_new), w = expf(s - m_new);
      l_b = l_b * alpha + w;
#pragma unroll
      for (int i = 0; i < kPer; ++i) ob[i] = ob[i] * alpha + w * v[i];
      m_b = m_new;
    }
    const float lse_b = m_b + logf(l_b);

    // Merge (the block part is never empty).
    const float m = fmaxf(lse_p, lse_b);
    const float wp = expf(lse_p - m), wb = expf(lse_b - m) / l_b;
    const float inv = 1.0f / (wp + expf(lse_b - m));
    T* out = static_cast<T*>(p.o) + q_off;
#pragma unroll
    for (int i = 0; i < kPer; i += 2)
      *reinterpret_cast<uint32_t*>(out + i) =
          Elem<T>::pack((wp * op[i] + wb * ob[i]) * inv, (wp * op[i + 1] + wb * ob[i + 1]) * inv);
    if (p.lse && lane == 0) p.lse[row] = m + logf(wp + expf(lse_b - m));
  }
}

template <typename T, int D>
void launch(const FinalizeParams& p, cudaStream_t stream) {
  const int group = p.num_q_heads / p.num_kv_heads;
  const int warps = group < kMaxWarps ? group : kMaxWarps;
  const size_t smem = 2ull * p.block_size * D * sizeof(T);  // <= 32 KB for B <= 64
  launch_kernel(finalize_kernel<T, D>, p.block_size * p.num_kv_heads, warps * 32, smem, stream, p);
  check_launch("finalize_kernel");
}

}  // namespace

void launch_finalize(DType dtype, int head_dim, const FinalizeParams& p, cudaStream_t stream) {
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, stream);
}

}  // namespace losa::cuda
