// The end of a layer-step. One CTA per (sequence, token, KV head) stages that head's block keys
// and values in shared memory once; each of its warps then finishes one (token, head) row:
//   prefix part: merge of the splits' partial states for tokens computed this step (written to
//                the LoSA cache with the reference query, keys and values), else the cached state;
//   block part:  dense attention over the sequence's B block keys;
//   output:      the LSE merge of the two.
#include <atomic>

#include "common.cuh"
#include "dispatch.cuh"
#include "kv_view.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "losa/cuda/device.hpp"

namespace losa::cuda {
namespace {

constexpr int kMaxWarps = 8;
constexpr int kMaxBlock = 64;
constexpr int kDeep = 32, kShallow = 5;  // partial rows in flight per warp (finalize_kernel)
std::atomic<int> forced_in_flight{0};

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

/// What a warp reads for its (token, head) row before anything depends on it, so that the reads
/// go out together: the query, every split's lse (at most 64 held; the partial states sit at the
/// token's row, so no slot lookup comes first), and the cached prefix state for a token that may
/// be inactive (read before the slot says whether it is: one round trip instead of two).
template <int D>
struct RowInputs {
  float q[D / 32];
  float lse[2];  // splits lane and lane + 32; -inf past the last
  float cached_o[D / 32];
  float cached_lse;
};

/// Split 0's partial state of the token's row g of a (sequence, KV head); split s is s * max_rows
/// further. Recomputed where needed rather than held: a register kept across the row's loads
/// moved the 5-row instance's spills at head dim 128 from 4 to 18 bytes.
__device__ __forceinline__ size_t partial_first(const FinalizeParams& p, int seq, int kvh, int token, int g) {
  const int group = p.num_q_heads / p.num_kv_heads;
  return partial_state_index(seq * p.num_kv_heads + kvh, p.num_splits, 0, p.max_rows, token * group + g);
}

template <typename T, int D>
__device__ __forceinline__ void load_row_inputs(const FinalizeParams& p, int seq, int token, int kvh, int g,
                                                bool read_cached, RowInputs<D>& in) {
  constexpr int kPer = D / 32;
  const int lane = threadIdx.x % 32, d0 = lane * kPer, Hq = p.num_q_heads, group = Hq / p.num_kv_heads;
  const int head = kvh * group + g;
  const int64_t token_row = static_cast<int64_t>(seq) * p.block_size + token;
  load_row<T, kPer>(static_cast<const T*>(p.q.data) + token_row * p.q.stride + head * D + d0, in.q);
  const size_t stride = static_cast<size_t>(p.max_rows), first = partial_first(p, seq, kvh, token, g);
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int s = lane + 32 * j;
    in.lse[j] = s < p.num_splits ? p.partial_lse[first + s * stride] : -INFINITY;
  }
  if (read_cached) {
    const int64_t state_row = token_row * Hq + head;
#pragma unroll
    for (int i = 0; i < kPer; ++i) in.cached_o[i] = p.prefix_o[state_row * D + d0 + i];
    in.cached_lse = p.prefix_lse[state_row];
  }
}

/// op += w * partial_o for `count` (<= InFlight) splits from s, their rows loaded at once; lane
/// lane0 + i holds split s + i's weight in w_lane.
template <int D, int InFlight>
__device__ __forceinline__ void accumulate_splits(const FinalizeParams& p, size_t first, int s, int count,
                                                  float w_lane, int lane0, float (&op)[D / 32]) {
  constexpr int kPer = D / 32;
  const int d0 = threadIdx.x % 32 * kPer;
  const size_t stride = static_cast<size_t>(p.max_rows);
  float v[InFlight][kPer];
#pragma unroll
  for (int i = 0; i < InFlight; ++i) {
    if (i >= count) break;
    const float* po = p.partial_o + (first + (s + i) * stride) * D + d0;
    if constexpr (kPer == 4) {
      const float4 x = *reinterpret_cast<const float4*>(po);
      v[i][0] = x.x;
      v[i][1] = x.y;
      v[i][2] = x.z;
      v[i][3] = x.w;
    } else {
      const float2 x = *reinterpret_cast<const float2*>(po);
      v[i][0] = x.x;
      v[i][1] = x.y;
    }
  }
#pragma unroll
  for (int i = 0; i < InFlight; ++i) {
    if (i >= count) break;
    const float w = __shfl_sync(0xffffffffu, w_lane, lane0 + i);
#pragma unroll
    for (int e = 0; e < kPer; ++e) op[e] += w * v[i][e];  // an empty split has w = 0, o = 0
  }
}

/// The LSE merge of a row's split partial states into op / lse_p (empty: o = 0, lse = -inf).
/// Each chunk of up to InFlight splits has all its partial rows in flight at once.
template <int D, int InFlight>
__device__ __forceinline__ void merge_splits(const FinalizeParams& p, size_t first, const RowInputs<D>& in,
                                             float (&op)[D / 32], float& lse_p) {
  constexpr int kPer = D / 32;
  const int lane = threadIdx.x % 32, n = p.num_splits;
  const size_t stride = static_cast<size_t>(p.max_rows);
  auto lse_of = [&](int s0) {  // this lane's split of the chunk starting at s0
    const int s = s0 + lane;
    return s0 == 0 ? in.lse[0] : s0 == 32 ? in.lse[1] : (s < n ? p.partial_lse[first + s * stride] : -INFINITY);
  };
  float m = -INFINITY;
  for (int s0 = 0; s0 < n; s0 += 32) m = fmaxf(m, lse_of(s0));
  m = warp_max(m);
#pragma unroll
  for (int i = 0; i < kPer; ++i) op[i] = 0.0f;
  lse_p = -INFINITY;
  if (m == -INFINITY) return;
  float sum = 0.0f;
  for (int s0 = 0; s0 < n; s0 += 32) {
    const float l = lse_of(s0);
    const float w_lane = l == -INFINITY ? 0.0f : expf(l - m);
    sum += warp_sum(w_lane);
    const int window = min(32, n - s0);  // splits whose weights the lanes hold
    for (int c0 = 0; c0 < window; c0 += InFlight)
      accumulate_splits<D, InFlight>(p, first, s0 + c0, min(InFlight, window - c0), w_lane, c0, op);
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) op[i] /= sum;
  lse_p = m + logf(sum);
}

/// InFlight: partial rows a warp loads at once. kDeep (~213 registers: 8 warps per SM) for grids
/// that fit one wave of it (one sequence), where each warp's latency chain is the kernel's time;
/// kShallow for larger grids, whose CTAs must be resident together: the most rows that fit 64
/// registers (8 CTAs of 4 warps per SM) with at most 16 bytes of spills (8 rows spilled 122).
template <typename T, int D, int InFlight>
__global__ void __launch_bounds__(kMaxWarps * 32, InFlight == kDeep ? 1 : 4)
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
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  // Every read that depends on nothing goes out first: the slot, the prefix length, the first
  // row's inputs and the staged block keys and values.
  const int slot = p.active.token_slot ? p.active.token_slot[seq * B + token] : token;
  const bool has_prefix = !p.block_part || p.kv_len[seq] > 0;  // a prefill chunk sees itself
  const bool read_cached = p.active.token_slot && p.prefix_o;  // the token may be inactive
  RowInputs<D> in;
  if (warp < group) load_row_inputs<T, D>(p, seq, token, kvh, warp, read_cached, in);
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
  if (p.stats && token == 0 && threadIdx.x == 0) {
    int32_t* out = p.stats + seq * (1 + Hk);
    const int pages = (p.kv_len[seq] + p.page_size - 1) / p.page_size;
    out[1 + kvh] = p.list_counts ? p.list_counts[seq * Hk + kvh] : (p.loaded_every_page ? pages : 0);
    if (kvh == 0) out[0] = active_token_count(p.active, seq);
  }
  __syncthreads();

  for (int g = warp; g < group; g += warps) {
    if (g != warp) load_row_inputs<T, D>(p, seq, token, kvh, g, read_cached, in);
    const int head = kvh * group + g;
    const int64_t token_row = seq_row0 + token;
    const int64_t state_row = token_row * Hq + head;  // row of the [S, B, Hq] state arrays
    const int d0 = lane * kPer;
    float* qw = q_s + warp * D;
#pragma unroll
    for (int i = 0; i < kPer; ++i) qw[d0 + i] = in.q[i];
    __syncwarp();

    // Prefix part.
    float op[kPer], lse_p;
    if (slot >= 0) {
      if (has_prefix) {
        merge_splits<D, InFlight>(p, partial_first(p, seq, kvh, token, g), in, op, lse_p);
      } else {
#pragma unroll
        for (int i = 0; i < kPer; ++i) op[i] = 0.0f;
        lse_p = -INFINITY;
      }
      if (p.prefix_o) {
#pragma unroll
        for (int i = 0; i < kPer; ++i) p.prefix_o[state_row * D + d0 + i] = op[i];
        if (lane == 0) p.prefix_lse[state_row] = lse_p;
      }
      if (p.q_ref) {
        T* q_ref = static_cast<T*>(p.q_ref) + state_row * D + d0;
#pragma unroll
        for (int i = 0; i < kPer; i += 2)  // q came in as T: the float round trip is exact
          *reinterpret_cast<uint32_t*>(q_ref + i) = Elem<T>::pack(in.q[i], in.q[i + 1]);
      }
      if (p.k_ref && g == 0) {  // the block part staged this token's key and value
        const int64_t ref = (token_row * Hk + kvh) * D + d0;
        copy_row<T, kPer>(k_s + token * kRow + d0, static_cast<T*>(p.k_ref) + ref);
        copy_row<T, kPer>(v_s + token * kRow + d0, static_cast<T*>(p.v_ref) + ref);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kPer; ++i) op[i] = in.cached_o[i];
      lse_p = in.cached_lse;
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
  const int ctas = num_seqs * p.block_size * p.num_kv_heads;
  const int forced = forced_in_flight;
  const bool deep = forced ? forced == kDeep : ctas * warps <= 8 * multiprocessor_count();
  if (deep) launch_kernel(finalize_kernel<T, D, kDeep>, ctas, warps * 32, smem, stream, p);
  else launch_kernel(finalize_kernel<T, D, kShallow>, ctas, warps * 32, smem, stream, p);
  check_launch("finalize_kernel");
}

}  // namespace

void force_finalize_rows_in_flight(int rows) {
  LOSA_CHECK_ARG(rows == 0 || rows == kDeep || rows == kShallow, "rows", "must be 0 (automatic), ", kShallow,
                 " or ", kDeep, ", got ", rows);
  forced_in_flight = rows;
}

void launch_finalize(DType dtype, int head_dim, const FinalizeParams& p, int num_seqs, cudaStream_t stream) {
  if (p.block_size < 1 || (p.block_part && p.block_size > kMaxBlock))
    throw ArgumentError("launch_finalize", "block_size", "must be in [1, 64] on the GPU, got " + std::to_string(p.block_size));
  if (p.k_ref && !p.block_part)  // the references are copied from the staged block keys and values
    throw ArgumentError("launch_finalize", "k_ref", "needs the block part");
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, num_seqs, stream);
}

}  // namespace losa::cuda
