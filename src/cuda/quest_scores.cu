// QUEST page scores on tensor cores. The upper bound sum_d max(q_d min_d, q_d max_d) equals
// q+ . max + q- . min with q+ = max(q, 0), q- = min(q, 0): two matrix products of the packed
// rows against the pages' bound vectors, exact in bf16/f16 operands with fp32 accumulation.
#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "tile.cuh"

namespace losa::cuda {
namespace {

// The positive and negative parts of two packed 16-bit floats (bf16 and f16 alike: bit 15 is
// the sign), by masking instead of comparing.
__device__ __forceinline__ uint32_t sign_mask(uint32_t x) { return ((x >> 15) & 0x00010001u) * 0xffffu; }
__device__ __forceinline__ uint32_t positive_part(uint32_t x) { return x & ~sign_mask(x); }
__device__ __forceinline__ uint32_t negative_part(uint32_t x) { return x & sign_mask(x); }

template <typename T, int D>
__global__ void __launch_bounds__(128) quest_scores_kernel(const __grid_constant__ QuestScoreParams p) {
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  allow_successor();
  using S = TileShape<T, D>;
  __shared__ __align__(128) char tiles[2 * S::kBytes];  // key_max then key_min of 64 pages
  const int page0 = blockIdx.x * kTileRows, kvh = blockIdx.y, row0 = blockIdx.z * kRowsPerCta;
  const int rows = *p.active.count * p.group;
  if (row0 >= rows) return;
  const int n = p.kv.num_pages;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;

  auto bounds_row = [&](const void* bounds) {
    return [=](int row) -> const void* {
      const int page = page0 + row;
      if (page >= n) return nullptr;
      return static_cast<const T*>(bounds) +
             (static_cast<size_t>(p.kv.page_table[page]) * p.kv.num_kv_heads + kvh) * D;
    };
  };
  load_tile_async<T, D, 128>(tiles, p.kv.key_max, bounds_row(p.kv.key_max));
  load_tile_async<T, D, 128>(tiles + S::kBytes, p.kv.key_min, bounds_row(p.kv.key_min));
  cp_async_commit();

  const int r_lo = row0 + warp * 16 + g, r_hi = r_lo + 8;
  auto q_row = [&](int r) -> const T* {
    if (r >= rows) return nullptr;
    const int token = p.active.tokens[r / p.group];
    const int head = kvh * p.group + r % p.group;
    return static_cast<const T*>(p.q) + (static_cast<size_t>(token) * p.num_q_heads + head) * D;
  };
  uint32_t qa[D / 16][4], q_pos[D / 16][4], q_neg[D / 16][4];
  load_query_fragments<T, D>(qa, q_row(r_lo), q_row(r_hi), lane);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      q_pos[kk][e] = positive_part(qa[kk][e]);
      q_neg[kk][e] = negative_part(qa[kk][e]);
    }
  cp_async_wait<0>();
  __syncthreads();
  if (row0 + warp * 16 >= rows) return;

  float s[8][4];
#pragma unroll
  for (int j = 0; j < 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
  warp_scores<T, D>(s, q_pos, tiles, lane);
  warp_scores<T, D>(s, q_neg, tiles + S::kBytes, lane);
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int page = page0 + 8 * j + 2 * t + (e & 1);
      const int r = e < 2 ? r_lo : r_hi;
      if (page < n && r < rows)
        p.scores[(static_cast<size_t>(kvh) * p.max_rows + r) * p.score_stride + page] = s[j][e];
    }
}

template <typename T, int D>
void launch(const QuestScoreParams& p, int row_tiles, cudaStream_t stream) {
  const dim3 grid(ceil_div(p.kv.num_pages, kTileRows), p.kv.num_kv_heads, row_tiles);
  launch_kernel(quest_scores_kernel<T, D>, grid, 128, 0, stream, p);
  check_launch("quest_scores_kernel");
}

}  // namespace

void launch_quest_scores(DType dtype, int head_dim, const QuestScoreParams& p, int row_tiles,
                         cudaStream_t stream) {
  if (p.kv.num_pages == 0) return;
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, row_tiles, stream);
}

}  // namespace losa::cuda
