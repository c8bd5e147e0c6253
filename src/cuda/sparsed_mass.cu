// SparseD's attention mass per (q head, page): sum over block tokens and the page's keys of
// exp(scale q.k - lse_full). One CTA per (64-token tile, sequence x KV head, 64-row tile): the scores come
// from the same tensor-core step as attention; per-page sums are reduced in the warp, then per
// head in shared memory, then added to the global mass.
#include "dispatch.cuh"
#include "kv_view.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "tile.cuh"

namespace losa::cuda {
namespace {

constexpr int kMaxGroup = 64;
constexpr int kMaxTilePages = kTileRows / 16;

template <typename T, int D>
__global__ void __launch_bounds__(128) sparsed_mass_kernel(const __grid_constant__ SparsedMassParams p) {
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  allow_successor();
  __shared__ __align__(128) char tile[TileShape<T, D>::kBytes];
  __shared__ float head_mass[kMaxGroup * kMaxTilePages];
  const int seq = blockIdx.y / p.kv.num_kv_heads, kvh = blockIdx.y % p.kv.num_kv_heads;
  const int row0 = blockIdx.z * kRowsPerCta;
  const int rows = p.block_size * p.group;  // every token, packed as token * group + g
  const SeqPages sp = seq_pages(p.kv, seq);
  const int P = p.kv.page_size, log2_page = __ffs(P) - 1, tile_pages = kTileRows / P;
  const int n = sp.num_pages, page0 = blockIdx.x * tile_pages;
  if (row0 >= rows || page0 >= n || (p.seq_mask && !p.seq_mask[seq])) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  auto valid_len = [&](int page) { return page >= n ? 0 : sp.valid_tokens(page, P); };
  load_tile_async<T, D, 128>(tile, p.kv.keys, [&](int row) -> const void* {
    const int page = page0 + (row >> log2_page), slot = row & (P - 1);
    if (slot >= valid_len(page)) return nullptr;
    return static_cast<const T*>(p.kv.keys) + page_block_offset(sp.table[page], kvh, p.kv.num_kv_heads, P, D) +
           static_cast<size_t>(slot) * D;
  });
  cp_async_commit();
  for (int i = threadIdx.x; i < p.group * tile_pages; i += 128) head_mass[i] = 0.0f;

  const int r_lo = row0 + warp * 16 + g, r_hi = r_lo + 8;
  const int64_t seq_row0 = static_cast<int64_t>(seq) * p.block_size;
  auto q_row = [&](int r) -> const T* {
    if (r >= rows) return nullptr;
    return static_cast<const T*>(p.q.data) + (seq_row0 + r / p.group) * p.q.stride +
           static_cast<int64_t>(kvh * p.group + r % p.group) * D;
  };
  auto lse2 = [&](int r) {  // the row's full lse in log2 units
    return r >= rows ? INFINITY
                     : p.lse_full[(seq_row0 + r / p.group) * p.num_q_heads + kvh * p.group + r % p.group] * kLog2e;
  };
  uint32_t qa[D / 16][4];
  load_query_fragments<T, D>(qa, q_row(r_lo), q_row(r_hi), lane);
  const float lse_lo = lse2(r_lo), lse_hi = lse2(r_hi);  // +inf for padding rows: weight 0
  cp_async_wait<0>();
  __syncthreads();

  if (row0 + warp * 16 < rows) {
    float s[8][4];
#pragma unroll
    for (int j = 0; j < 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
    warp_scores<T, D>(s, qa, tile, lane);
    float page_sum[2][kMaxTilePages] = {};
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = 8 * j + 2 * t + (e & 1);
        const int ps = col >> log2_page;
        const bool real = (col & (P - 1)) < valid_len(page0 + ps);
        const float w = real ? exp2f(s[j][e] * p.scale_log2 - (e < 2 ? lse_lo : lse_hi)) : 0.0f;
#pragma unroll
        for (int q = 0; q < kMaxTilePages; ++q)
          if (q == ps) page_sum[e / 2][q] += w;
      }
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int q = 0; q < kMaxTilePages; ++q) {
        float v = page_sum[h][q];
        v += __shfl_xor_sync(0xffffffffu, v, 1);
        v += __shfl_xor_sync(0xffffffffu, v, 2);
        const int r = h == 0 ? r_lo : r_hi;
        if (t == 0 && q < tile_pages && r < rows) atomicAdd(&head_mass[(r % p.group) * tile_pages + q], v);
      }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < p.group * tile_pages; i += 128) {
    const int gi = i / tile_pages, page = page0 + i % tile_pages;
    if (page < n)
      atomicAdd(&p.mass[(static_cast<size_t>(blockIdx.y) * p.group + gi) * p.mass_stride + page], head_mass[i]);
  }
}

template <typename T, int D>
void launch(const SparsedMassParams& p, int row_tiles, int num_seqs, int max_pages, cudaStream_t stream) {
  const int tile_pages = kTileRows / p.kv.page_size;
  const dim3 grid(ceil_div(max_pages, tile_pages), num_seqs * p.kv.num_kv_heads, row_tiles);
  launch_kernel(sparsed_mass_kernel<T, D>, grid, 128, 0, stream, p);
  check_launch("sparsed_mass_kernel");
}

}  // namespace

int sparsed_max_group() { return kMaxGroup; }

void launch_sparsed_mass(DType dtype, int head_dim, const SparsedMassParams& p, int row_tiles, int num_seqs,
                         int max_pages, cudaStream_t stream) {
  if (p.group > kMaxGroup)
    throw ArgumentError("launch_sparsed_mass", "group", "must be <= 64 on the GPU");
  if (max_pages == 0) return;
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, row_tiles, num_seqs, max_pages, stream);
}

}  // namespace losa::cuda
