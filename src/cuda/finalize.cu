// The end of a layer-step. One CTA per (sequence, token, KV head) stages that head's block keys
// and values in shared memory once; each of its warps then finishes one (token, head) row:
//   prefix part: merge of the splits' partial states for tokens computed this step (written to
//                the LoSA cache with the reference query, keys and values), else the cached state;
//   block part:  dense attention over the sequence's B block keys;
//   output:      the LSE merge of the two.
#include "common.cuh"
#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"

namespace losa::cuda {
namespace {

constexpr int kMaxWarps = 8;
constexpr int kMaxBlock = 64;

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

/// q . k for one block key held in shared memory (16-byte loads) and q staged per warp in fp32.
template <typename T, int D>
__device__ __forceinline__ float dot_with_key(const float* q, const T* key) {
  float acc = 0.0f;
#pragma unroll
  for (int c = 0; c < D; c += 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(key + c);
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 k2 = Elem<T>::unpack(w[i]);
      acc = fmaf(q[c + 2 * i], k2.x, acc);
      acc = fmaf(q[c + 2 * i + 1], k2.y, acc);
    }
  }
  return acc;
}

template <typename T, int D>
__global__ void __launch_bounds__(kMaxWarps * 32)
    finalize_kernel(const __grid_constant__ FinalizeParams p) {
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  allow_successor();
  constexpr int kPer = D / 32;    // output elements per lane, contiguous
  constexpr int kRow = D + 8;     // padded block K/V rows: a lane per key reads without conflicts
  extern __shared__ __align__(16) unsigned char smem[];
  const int Hq = p.num_q_heads, Hk = p.num_kv_heads, group = Hq / Hk, B = p.block_size;
  const int kvh = blockIdx.x % Hk, token = (blockIdx.x / Hk) % B, seq = blockIdx.x / (Hk * B);
  if (p.seq_mask && !p.seq_mask[seq]) return;  // sitting out: its output and state stay as they are
  const int64_t seq_row0 = static_cast<int64_t>(seq) * B;  // the sequence's first token row
  // Staged block keys and values (none without a block part), then each warp's query.
  const int staged = p.block_part ? B : 0;
  T* k_s = reinterpret_cast<T*>(smem);
  T* v_s = k_s + staged * kRow;
  float* q_s = reinterpret_cast<float*>(v_s + staged * kRow);  // [warps, D]
  for (int c = threadIdx.x; c < staged * D / 8; c += blockDim.x) {
    const int j = c / (D / 8), col = (c % (D / 8)) * 8;
    const int64_t row = seq_row0 + j;
    *reinterpret_cast<uint4*>(k_s + j * kRow + col) = *reinterpret_cast<const uint4*>(
        static_cast<const T*>(p.k_blk.data) + row * p.k_blk.stride + kvh * D + col);
    *reinterpret_cast<uint4*>(v_s + j * kRow + col) = *reinterpret_cast<const uint4*>(
        static_cast<const T*>(p.v_blk.data) + row * p.v_blk.stride + kvh * D + col);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int slot = p.active.token_slot ? p.active.token_slot[seq * B + token] : token;
  const bool has_prefix = !p.block_part || p.kv_len[seq] > 0;  // a prefill chunk sees itself
  if (p.stats && token == 0 && threadIdx.x == 0) {
    int32_t* out = p.stats + seq * (1 + Hk);
    const int pages = (p.kv_len[seq] + p.page_size - 1) / p.page_size;
    out[1 + kvh] = p.list_counts ? p.list_counts[seq * Hk + kvh] : (p.loaded_every_page ? pages : 0);
    if (kvh == 0) out[0] = p.active.count[seq];
  }
  __syncthreads();

  for (int g = warp; g < group; g += warps) {
    const int head = kvh * group + g;
    const int64_t token_row = seq_row0 + token;
    const int64_t state_row = token_row * Hq + head;  // row of the [S, B, Hq] state arrays
    const int d0 = lane * kPer;
    const T* q_global = static_cast<const T*>(p.q.data) + token_row * p.q.stride + head * D;

    float q[kPer];
    load_row<T, kPer>(q_global + d0, q);
    float* qw = q_s + warp * D;
#pragma unroll
    for (int i = 0; i < kPer; ++i) qw[d0 + i] = q[i];
    __syncwarp();

    // Prefix part.
    float op[kPer], lse_p;
    if (slot >= 0) {
      lse_p = -INFINITY;
#pragma unroll
      for (int i = 0; i < kPer; ++i) op[i] = 0.0f;
      if (has_prefix) {
        // Lane s reads split s's lse (all splits at once, not one dependent load after another),
        // the warp finds the max and each split's weight; the outputs are then summed with
        // independent loads in flight.
        const int r = slot * group + g;
        const size_t stride = static_cast<size_t>(p.max_rows);
        const size_t first = (static_cast<size_t>(seq) * Hk + kvh) * p.num_splits * stride + r;
        float m = -INFINITY;
        for (int s = lane; s < p.num_splits; s += 32) m = fmaxf(m, p.partial_lse[first + s * stride]);
        m = warp_max(m);
        if (m != -INFINITY) {
          float sum = 0.0f;
          for (int s0 = 0; s0 < p.num_splits; s0 += 32) {
            const int s = s0 + lane;
            const float w_lane = s < p.num_splits ? expf(p.partial_lse[first + s * stride] - m) : 0.0f;
            sum += warp_sum(w_lane);
            const int count = min(32, p.num_splits - s0);
#pragma unroll 16  // 16 splits' partial rows in flight at once
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
      if (p.prefix_o) {
#pragma unroll
        for (int i = 0; i < kPer; ++i) p.prefix_o[state_row * D + d0 + i] = op[i];
        if (lane == 0) p.prefix_lse[state_row] = lse_p;
      }
      if (p.q_ref) copy_row<T, kPer>(q_global + d0, static_cast<T*>(p.q_ref) + state_row * D + d0);
      if (p.k_ref && g == 0) {
        const int64_t ref = (token_row * Hk + kvh) * D + d0;
        copy_row<T, kPer>(static_cast<const T*>(p.k_blk.data) + token_row * p.k_blk.stride + kvh * D + d0,
                          static_cast<T*>(p.k_ref) + ref);
        copy_row<T, kPer>(static_cast<const T*>(p.v_blk.data) + token_row * p.v_blk.stride + kvh * D + d0,
                          static_cast<T*>(p.v_ref) + ref);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kPer; ++i) op[i] = p.prefix_o[state_row * D + d0 + i];
      lse_p = p.prefix_lse[state_row];
    }

    if (!p.block_part) {  // prefill: the prefix part already holds the chunk's own blocks
      T* out = static_cast<T*>(p.o.data) + token_row * p.o.stride + head * D + d0;
#pragma unroll
      for (int i = 0; i < kPer; i += 2) *reinterpret_cast<uint32_t*>(out + i) = Elem<T>::pack(op[i], op[i + 1]);
      continue;
    }
    // Block part: lane j scores block key j (and j + 32), one softmax over the lanes, then each
    // lane sums its output columns over the keys.
    float s_lo = -INFINITY, s_hi = -INFINITY;
    if (lane < B) s_lo = dot_with_key<T, D>(qw, k_s + lane * kRow) * p.scale;
    if (lane + 32 < B) s_hi = dot_with_key<T, D>(qw, k_s + (lane + 32) * kRow) * p.scale;
    const float m_b = warp_max(fmaxf(s_lo, s_hi));
    const float w_lo = lane < B ? expf(s_lo - m_b) : 0.0f, w_hi = lane + 32 < B ? expf(s_hi - m_b) : 0.0f;
    const float l_b = warp_sum(w_lo + w_hi);
    float ob[kPer];
#pragma unroll
    for (int i = 0; i < kPer; ++i) ob[i] = 0.0f;
    for (int j = 0; j < B; ++j) {
      const float w = __shfl_sync(0xffffffffu, j < 32 ? w_lo : w_hi, j & 31);
      float v[kPer];
      load_row<T, kPer>(v_s + j * kRow + d0, v);
#pragma unroll
      for (int i = 0; i < kPer; ++i) ob[i] = fmaf(w, v[i], ob[i]);
    }
    const float lse_b = m_b + logf(l_b);

    // Merge (the block part is never empty).
    const float m = fmaxf(lse_p, lse_b);
    const float wp = expf(lse_p - m), wb = expf(lse_b - m) / l_b;
    const float inv = 1.0f / (wp + expf(lse_b - m));
    T* out = static_cast<T*>(p.o.data) + token_row * p.o.stride + head * D + d0;
#pragma unroll
    for (int i = 0; i < kPer; i += 2)
      *reinterpret_cast<uint32_t*>(out + i) =
          Elem<T>::pack((wp * op[i] + wb * ob[i]) * inv, (wp * op[i + 1] + wb * ob[i + 1]) * inv);
    if (p.lse && lane == 0) p.lse[state_row] = m + logf(wp + expf(lse_b - m));
    __syncwarp();  // q_s is rewritten by the warp's next row
  }
}

template <typename T, int D>
size_t finalize_smem(int staged_tokens, int warps) {
  return 2ull * staged_tokens * (D + 8) * sizeof(T) + static_cast<size_t>(warps) * D * sizeof(float);
}

template <typename T, int D>
void launch(const FinalizeParams& p, int num_seqs, cudaStream_t stream) {
  const int group = p.num_q_heads / p.num_kv_heads;
  const int warps = group < kMaxWarps ? group : kMaxWarps;
  const size_t smem = finalize_smem<T, D>(p.block_part ? p.block_size : 0, warps);  // <= 38 KB for B <= 64
  launch_kernel(finalize_kernel<T, D>, num_seqs * p.block_size * p.num_kv_heads, warps * 32, smem, stream, p);
  check_launch("finalize_kernel");
}

}  // namespace

void launch_finalize(DType dtype, int head_dim, const FinalizeParams& p, int num_seqs, cudaStream_t stream) {
  if (p.block_size < 1 || (p.block_part && p.block_size > kMaxBlock))
    throw ArgumentError("launch_finalize", "block_size", "must be in [1, 64] on the GPU, got " + std::to_string(p.block_size));
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, num_seqs, stream);
}

}  // namespace losa::cuda
