// QUEST page scores on tensor cores. The upper bound sum_d max(q_d min_d, q_d max_d) equals
// q+ . max + q- . min with q+ = max(q, 0), q- = min(q, 0): two matrix products of the packed
// rows against the pages' bound vectors, exact in bf16/f16 operands with fp32 accumulation.
// With 8-bit bounds the int8 values are widened to 16 bits in shared memory (exact) and each
// page's score is multiplied by its scale.
//
// Grid (page tiles, S * Hk, row tiles): a CTA scores 64 pages of one (sequence, KV head) for 64
// packed rows. The tile's physical pages are read once into shared memory before the copies.
#include <atomic>

#include "dispatch.cuh"
#include "kv_view.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "losa/cuda/device.hpp"
#include "tile.cuh"

namespace losa::cuda {
namespace {

// CTAs per SM each instance's register cap allows (launch() says which runs where).
constexpr int kOneWaveCtasPerSm = 4, kManyWavesCtasPerSm = 5;  // head dim 128
constexpr int kHeadDim64CtasPerSm = 6;
std::atomic<int> forced_ctas_per_sm{0};

// The positive and negative parts of two packed 16-bit floats (bf16 and f16 alike: bit 15 is
// the sign), by masking instead of comparing.
__device__ __forceinline__ uint32_t sign_mask(uint32_t x) { return ((x >> 15) & 0x00010001u) * 0xffffu; }

// s += q+ . max + q- . min, one k step at a time: each step's positive and negative parts are
// made as they are used, so that q is the only copy of the query in registers (5 CTAs per SM
// at head dim 128 leave 96 registers a thread: with both parts held the kernel spilled).
template <typename T, int D>
__device__ __forceinline__ void warp_bound_scores(float (&s)[8][4], const uint32_t (&q)[D / 16][4], const char* tiles,
                                                  int lane) {
  const uint32_t max_base = smem_addr(tiles), min_base = max_base + TileShape<T, D>::kBytes;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t pos[4], neg[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const uint32_t m = sign_mask(q[kk][e]);
      pos[e] = q[kk][e] & ~m;
      neg[e] = q[kk][e] & m;
    }
    warp_scores_step<T, D>(s, pos, max_base, kk, lane);
    warp_scores_step<T, D>(s, neg, min_base, kk, lane);
  }
}

// Registers capped so that MinCtasPerSm CTAs fit an SM (launch() says which).
template <typename T, int D, int MinCtasPerSm>
__global__ void __launch_bounds__(128, MinCtasPerSm) quest_scores_kernel(const __grid_constant__ QuestScoreParams p) {
  using S = TileShape<T, D>;
  __shared__ __align__(128) char tiles[2 * S::kBytes];  // key_max then key_min of 64 pages
  // 8-bit bounds land as raw [min | max] rows in the key_min tile's place (the same bytes).
  const int8_t* raw8 = reinterpret_cast<const int8_t*>(tiles + S::kBytes);
  __shared__ int32_t tile_phys[kTileRows];
  __shared__ float tile_scale[kTileRows];  // 8-bit bounds: each page's scale, read once
  const int page0 = blockIdx.x * kTileRows, head_slot = blockIdx.y, row0 = blockIdx.z * kRowsPerCta;
  const int Hk = p.kv.num_kv_heads, seq = head_slot / Hk, kvh = head_slot % Hk;
  const bool eight_bit = p.kv.bounds8 != nullptr;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  // The page table, the prefix length and the bounds are written by appends that the previous
  // kernel waited for (every kernel of a step waits before it lets its successor start; on a
  // full step, with no active-set kernel, the previous kernel is the caller's: an append lets
  // its successor start only when it ends), never by the kernel this one overlaps under PDL. So
  // the first row tile loads them before the wait: with PDL the bounds stream in while the
  // active set is chosen. The rows come after it.
  const SeqPages sp = seq_pages(p.kv, seq);
  const int n = sp.num_pages;
  if (page0 >= n) {  // uniform over the CTA; it waits all the same, so that the grid never ends
    wait_for_predecessor();  // before its predecessor (kernels after it rely on that order)
    return;
  }
  auto issue_bounds_loads = [&] {
    for (int i = threadIdx.x; i < kTileRows; i += 128) {
      const int phys = page0 + i < n ? sp.table[page0 + i] : -1;
      tile_phys[i] = phys;
      tile_scale[i] = eight_bit && phys >= 0 ? p.kv.bound_scale[static_cast<size_t>(phys) * Hk + kvh] : 1.0f;
    }
    __syncthreads();
    if (eight_bit) {
      constexpr int kChunks = 2 * D / 16;
      const uint32_t base = smem_addr(tiles + S::kBytes);
      for (int c = threadIdx.x; c < kTileRows * kChunks; c += 128) {
        const int row = c / kChunks, chunk = c % kChunks, phys = tile_phys[row];
        const int8_t* src =
            phys >= 0 ? p.kv.bounds8 + (static_cast<size_t>(phys) * Hk + kvh) * 2 * D + chunk * 16 : p.kv.bounds8;
        cp_async_16(base + c * 16, src, phys >= 0 ? 16 : 0);
      }
    } else {
      auto bounds_row = [&](const void* bounds) {
        return [=](int row) -> const void* {
          const int phys = tile_phys[row];
          return phys < 0 ? nullptr : static_cast<const T*>(bounds) + (static_cast<size_t>(phys) * Hk + kvh) * D;
        };
      };
      load_tile_async<T, D, 128>(tiles, p.kv.key_max, bounds_row(p.kv.key_max));
      load_tile_async<T, D, 128>(tiles + S::kBytes, p.kv.key_min, bounds_row(p.kv.key_min));
    }
    cp_async_commit();
  };
  // Later row tiles have rows only when many tokens are active: they load after the wait, so
  // that a tile without rows costs no bytes.
  const bool early = blockIdx.z == 0;
  if (early) issue_bounds_loads();
  wait_for_predecessor();  // PDL: the active set is visible from here on
  const int rows = packed_rows(p.active, seq, p.group);
  if (row0 >= rows) {
    cp_async_wait<0>();
    return;  // uniform over the CTA
  }
  if (!early) issue_bounds_loads();

  const int r_lo = row0 + warp * 16 + g, r_hi = r_lo + 8;
  auto q_row = [&](int r) -> const T* {
    if (r >= rows) return nullptr;
    return static_cast<const T*>(packed_query_row(p.q, p.active, seq, kvh, p.group, p.num_q_heads, D, r, sizeof(T)));
  };
  uint32_t qa[D / 16][4];
  load_query_fragments<T, D>(qa, q_row(r_lo), q_row(r_hi), lane);
  cp_async_wait<0>();
  __syncthreads();
  // The top-k may become resident from here on: its CTAs would otherwise take the slots that
  // this kernel's later CTAs (a grid of several waves) need for their bounds.
  allow_successor();
  if (eight_bit) {
    // Widen the int8 rows into the two swizzled 16-bit tiles (exact: |q| <= 127). The raw rows
    // share the key_min tile's bytes, so every thread reads its chunks before any writes.
    constexpr int kPerThread = kTileRows * S::kRowChunks / 128;
    uint2 lo8[kPerThread], hi8[kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int c = threadIdx.x + i * 128, row = c / S::kRowChunks, chunk = c % S::kRowChunks;
      lo8[i] = *reinterpret_cast<const uint2*>(raw8 + row * 2 * D + chunk * 8);
      hi8[i] = *reinterpret_cast<const uint2*>(raw8 + row * 2 * D + D + chunk * 8);
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int c = threadIdx.x + i * 128, row = c / S::kRowChunks, chunk = c % S::kRowChunks;
      const int8_t* lo = reinterpret_cast<const int8_t*>(&lo8[i]);
      const int8_t* hi = reinterpret_cast<const int8_t*>(&hi8[i]);
      uint32_t packed_lo[4], packed_hi[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        packed_lo[j] = Elem<T>::pack(lo[2 * j], lo[2 * j + 1]);
        packed_hi[j] = Elem<T>::pack(hi[2 * j], hi[2 * j + 1]);
      }
      const int at = swizzled_offset(row, chunk, S::kRowChunks);
      *reinterpret_cast<uint4*>(tiles + S::kBytes + at) = make_uint4(packed_lo[0], packed_lo[1], packed_lo[2], packed_lo[3]);
      *reinterpret_cast<uint4*>(tiles + at) = make_uint4(packed_hi[0], packed_hi[1], packed_hi[2], packed_hi[3]);
    }
    __syncthreads();
  }
  if (row0 + warp * 16 >= rows) return;

  float s[8][4];
#pragma unroll
  for (int j = 0; j < 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
  warp_bound_scores<T, D>(s, qa, tiles, lane);
  // Pages 2t and 2t + 1 of a fragment are adjacent: stored as a pair, a warp's store covers 32
  // contiguous bytes of each of its 8 rows (whole sectors; score_stride is a multiple of 4).
  float* out = p.scores + static_cast<size_t>(head_slot) * p.max_rows * p.score_stride;
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int local = 8 * j + 2 * t, page = page0 + local;
      const int r = h == 0 ? r_lo : r_hi;
      if (r >= rows || page >= n) continue;
      const float a = s[j][2 * h] * tile_scale[local], b = s[j][2 * h + 1] * tile_scale[local + 1];
      float* at = out + static_cast<size_t>(r) * p.score_stride + page;
      if (page + 1 < n)
        *reinterpret_cast<float2*>(at) = make_float2(a, b);
      else
        *at = a;
    }
}

// Two register budgets at head dim 128 (bench/NOTES.md, tenth round): 128 registers (4 CTAs
// per SM) for a grid whose loading CTAs fit one wave at 4 per SM (one 64K prefix: 512 CTAs),
// where they measured 0.5-1.5 us faster; 96 registers (5 per SM: more tiles of bounds in flight
// per SM) for grids of several waves (8 x 32K: 2048 CTAs), 3-4 us faster. Head dim 64: 6 per SM.
// fn(the kernel instance of `ctas_per_sm`): the one mapping from a count to an instance, for the
// launch and the occupancy query alike. Head dim 64 has one instance, whatever the count.
template <typename T, int D, typename Fn>
void with_instance(int ctas_per_sm, Fn&& fn) {
  if constexpr (D == 128) {
    if (ctas_per_sm == kOneWaveCtasPerSm) fn(quest_scores_kernel<T, D, kOneWaveCtasPerSm>);
    else fn(quest_scores_kernel<T, D, kManyWavesCtasPerSm>);
  } else {
    fn(quest_scores_kernel<T, D, kHeadDim64CtasPerSm>);
  }
}

template <typename T, int D>
void launch(const QuestScoreParams& p, int row_tiles, int num_seqs, int max_pages, cudaStream_t stream) {
  const dim3 grid(ceil_div(max_pages, kTileRows), num_seqs * p.kv.num_kv_heads, row_tiles);
  const bool pdl = programmatic_launch_enabled(/*on_by_default=*/true);
  int ctas = forced_ctas_per_sm;
  if (ctas == 0)
    ctas = static_cast<int64_t>(grid.x) * grid.y <= static_cast<int64_t>(kOneWaveCtasPerSm) * multiprocessor_count()
               ? kOneWaveCtasPerSm
               : kManyWavesCtasPerSm;
  with_instance<T, D>(ctas, [&](auto kernel) { launch_kernel(kernel, grid, 128, 0, stream, p, pdl); });
  check_launch("quest_scores_kernel");
}

template <typename T, int D>
void resident_ctas(int ctas_per_sm, int* resident) {
  with_instance<T, D>(ctas_per_sm, [&](auto kernel) {
    LOSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(resident, kernel, 128, 0));
  });
}

}  // namespace

void force_page_score_ctas_per_sm(int ctas) {
  LOSA_CHECK_ARG(ctas == 0 || ctas == kOneWaveCtasPerSm || ctas == kManyWavesCtasPerSm, "ctas", "must be 0 (automatic), ",
                 kOneWaveCtasPerSm, " or ", kManyWavesCtasPerSm, ", got ", ctas);
  forced_ctas_per_sm = ctas;
}

int page_score_resident_ctas(DType dtype, int head_dim, int ctas_per_sm) {
  LOSA_CHECK_ARG(ctas_per_sm == kOneWaveCtasPerSm || ctas_per_sm == kManyWavesCtasPerSm, "ctas_per_sm",
                 "must name an instance (", kOneWaveCtasPerSm, " or ", kManyWavesCtasPerSm, "), got ", ctas_per_sm);
  int resident = 0;
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, resident_ctas, ctas_per_sm, &resident);
  return resident;
}

void launch_quest_scores(DType dtype, int head_dim, const QuestScoreParams& p, int row_tiles, int num_seqs,
                         int max_pages, cudaStream_t stream) {
  if (max_pages == 0) return;
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, row_tiles, num_seqs, max_pages, stream);
}

}  // namespace losa::cuda
