#pragma once
// Paged prefix attention for packed GQA rows, split over the page list (flash-decoding).
//
// Grid (row_tiles, num_splits, S * Hk), 128 or 256 threads. A CTA serves 64 or 128 rows of one
// (sequence, KV head) (warps of 16 rows, tensor cores) over its share of the page list, streaming 64-token
// K/V tiles through a cp.async pipeline; it writes a partial (o, lse) per row at the row's token
// (partial_state_row), merged across splits by the finalize kernel. The page list's length and the prefix length live on the
// device: every split derives its range from them, so the launch needs no host synchronisation
// and one captured launch serves every block.
#include <climits>

#include "kv_view.cuh"
#include "launch.cuh"
#include "params.hpp"
#include "tile.cuh"

namespace losa::cuda {

struct WindowPage {
  size_t offset;  // element offset of the page's [P, D] block for this KV head
  int logical;    // logical page in the sequence
  int valid;      // valid tokens in the page
};

/// Warps: 4 (64 rows a CTA) or 8 (128 rows: one page load serves twice the rows, for blocks of
/// 32 and 64 tokens and prefill chunks, where two 64-row CTAs would each read every page).
/// Masked: rows attend only their own pages of the loaded list (QUEST and LoSA with own
/// selections, SparseD by head). Its own instance, so that the unmasked ones (dense, union,
/// prefill) carry none of the mask staging: sharing one instance cost dense 1.5% in the batch.
/// Wgmma (unmasked only, sm_90a): each warpgroup's 64 rows multiply by wgmma from tiles in
/// wgmma.cuh's layout instead of each warp's 16 by mma.sync and ldmatrix.
template <typename T, int D, int Stages, int Warps = 4, bool Masked = false, bool Wgmma = false>
struct PagedAttentionConfig {
  static_assert(!(Masked && Wgmma), "the wgmma instance serves unmasked rows only");
  static constexpr int kThreads = 32 * Warps;
  static constexpr int kRows = 16 * Warps;
  // Stages: attention_stages() says which runs where (2 at head dim 128, measured faster than 3
  // at the same residency; 3 at head dim 64 where the device allows).
  static constexpr int kStages = Stages;
  // Page-table entries staged in shared memory at once: lookups happen before the pipeline, not
  // inside it (a dependent global load per tile would stall the copies).
  // (224 at head dim 64 when masked: with the staged mask bits, 3 stages of 4 warps keep 3 CTAs
  // per SM on sm_80, whose 164 KB would not hold three at 256.)
  static constexpr int kWindowPages = Masked && D == 64 ? 224 : 256;
  static constexpr int kTileBytes = TileShape<T, D>::kBytes;
  // Own selections: for each window page, which of the CTA's rows may attend it (bit r of word
  // r / 32), staged once per window instead of read from each row's mask at every tile.
  static constexpr int kAllowedWords = Masked ? kRows / 32 : 0;
  // wgmma's 128-byte swizzle wants 1024-byte aligned tiles: room to align the dynamic base.
  static constexpr int kAlignSlack = Wgmma ? 1024 : 0;
  static constexpr int kSmemBytes = kAlignSlack + kStages * 2 * kTileBytes + kWindowPages * sizeof(WindowPage) +
                                    kWindowPages * kAllowedWords * sizeof(uint32_t) + kRows * sizeof(int);
};

template <typename T, int D, int Stages, int Warps, bool Masked, bool Wgmma>
__global__ void __launch_bounds__(32 * Warps) paged_attention_kernel(const __grid_constant__ PagedAttentionParams p) {
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  using Cfg = PagedAttentionConfig<T, D, Stages, Warps, Masked, Wgmma>;
  extern __shared__ __align__(128) char smem_base[];
  char* smem = smem_base + (Wgmma ? (1024 - (smem_addr(smem_base) & 1023)) & 1023 : 0);
  char* tiles = smem;
  WindowPage* window = reinterpret_cast<WindowPage*>(smem + Cfg::kStages * 2 * Cfg::kTileBytes);
  uint32_t* window_allowed = reinterpret_cast<uint32_t*>(window + Cfg::kWindowPages);  // [kWindowPages][kAllowedWords]
  int* state_row_s = reinterpret_cast<int*>(window_allowed + Cfg::kWindowPages * Cfg::kAllowedWords);  // [kRows]

  const int row_tile = blockIdx.x, split = blockIdx.y;
  const int seq = blockIdx.z / p.kv.num_kv_heads, kvh = blockIdx.z % p.kv.num_kv_heads;
  const int head_slot = blockIdx.z;  // seq * Hk + kvh: index of the (sequence, KV head) arrays
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int rows = packed_rows(p.active, seq, p.group);
  const int row0 = row_tile * Cfg::kRows;
  if (row0 >= rows) return;  // uniform over the CTA

  const SeqPages sp = seq_pages(p.kv, seq);
  const int P = p.kv.page_size;
  const int log2_page = __ffs(P) - 1;
  const int tile_pages = kTileRows / P;
  // Prefill: each row sees the keys before its block's end; the CTA reads up to its last row's.
  auto causal_limit = [&](int r) {
    return p.kv.kv_len[seq] + (min(r, rows - 1) / p.group / p.causal_block + 1) * p.causal_block;
  };
  const bool causal = p.causal_block > 0;
  const int cta_limit_min = causal ? causal_limit(row0) : INT_MAX;
  const int count = causal ? (causal_limit(row0 + Cfg::kRows - 1) + P - 1) / P
                           : (p.list.pages ? p.list.counts[head_slot] : sp.num_pages);
  const int total_tiles = (count + tile_pages - 1) / tile_pages;
  const int per_split = (total_tiles + p.num_splits - 1) / p.num_splits;
  const int tile_begin = split * per_split;
  const int tile_end = min(total_tiles, tile_begin + per_split);

  // This lane's two rows: r_lo = warp's row g, r_hi = row g + 8.
  const int r_lo = row0 + warp * 16 + g, r_hi = r_lo + 8;
  const int limit_lo = causal ? causal_limit(r_lo) : INT_MAX, limit_hi = causal ? causal_limit(r_hi) : INT_MAX;
  const bool warp_has_rows = row0 + warp * 16 < rows;
  // wgmma: a warpgroup multiplies together; its warps past the rows compute on zero queries.
  const bool computes = Wgmma ? row0 + (warp / 4) * 64 < rows : warp_has_rows;
  auto q_row = [&](int r) -> const T* {
    if (r >= rows) return nullptr;
    return static_cast<const T*>(
        packed_query_row(p.q, p.active, seq, kvh, p.group, p.num_q_heads, D, r, sizeof(T)));
  };
  auto mask_row = [&](int r) -> const uint32_t* {
    const int mr = p.mask.by_head_only ? r % p.group : r;
    return p.mask.bits + (static_cast<size_t>(head_slot) * p.mask.rows_per_kv_head + mr) * p.mask.words;
  };
  constexpr bool masked = Masked;  // the launch chose the instance from p.mask.bits
  // Each row's partial-state row, looked up once here (the query loads below read the same
  // tokens) and kept in shared memory: registers are the main loop's.
  if (threadIdx.x < Cfg::kRows && row0 + threadIdx.x < rows)
    state_row_s[threadIdx.x] = partial_state_row(p.active, seq, p.group, row0 + threadIdx.x);
  uint32_t qa[D / 16][4];
  load_query_fragments<T, D>(qa, q_row(r_lo), q_row(r_hi), lane);

  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  const T* keys = static_cast<const T*>(p.kv.keys);
  const T* values = static_cast<const T*>(p.kv.values);
  const int window_tiles = Cfg::kWindowPages / tile_pages;
  for (int win = tile_begin; win < tile_end; win += window_tiles) {
    const int win_end = min(tile_end, win + window_tiles);
    const int entry0 = win * tile_pages;
    const int entries = min(count, win_end * tile_pages) - entry0;
    __syncthreads();  // the previous window's tiles and pages are consumed
    for (int e = threadIdx.x; e < entries; e += Cfg::kThreads) {
      const size_t at = static_cast<size_t>(head_slot) * p.list.list_stride + entry0 + e;
      const int logical = p.list.pages ? p.list.pages[at] : entry0 + e;
      // The selection stores physical pages beside logical ones: no dependent load here.
      const int phys = p.list.pages ? p.list.phys[at] : sp.table[logical];
      // Prefill pages hold the chunk beyond kv_len: full pages, cut by each row's limit instead.
      window[e] = {page_block_offset(phys, kvh, p.kv.num_kv_heads, P, D), logical,
                   causal ? P : sp.valid_tokens(logical, P)};
    }
    __syncthreads();
    const int num_tiles = win_end - win;
    auto issue = [&](int i) {
      const int first = i * tile_pages;
      const int npages = min(tile_pages, entries - first);
      char* k_tile = tiles + (i % Cfg::kStages) * 2 * Cfg::kTileBytes;
      load_kv_pages_async<T, D, Cfg::kThreads, Wgmma>(
          k_tile, k_tile + Cfg::kTileBytes, keys, values,
          [&](int ps) { return ps < npages ? window[first + ps] : WindowPage{0, 0, 0}; }, log2_page);
    };
#pragma unroll
    for (int i = 0; i < Cfg::kStages - 1; ++i) {
      if (i < num_tiles) issue(i);
      cp_async_commit();
    }
    if constexpr (masked) {
      // The K/V of the first tiles is already on its way (it needs only the window). One thread
      // per page loads that page's mask word of each of the CTA's rows and packs the bits (bit r
      // of word r / 32; 0 for rows past nrows, and for whole words of them). Rows are clamped, not
      // branched around, so that a batch's loads are independent and in flight together (a load
      // under `r < nrows` was compiled with its use inside the branch: one L2 round trip after
      // another, ~19 per warp for a 76-page window). Neighbouring threads take neighbouring pages
      // of the ascending list: a row's words for them share a sector or two.
      const int nrows = min(Cfg::kRows, rows - row0);
      constexpr int kBatch = 16;
      for (int e = threadIdx.x; e < entries; e += Cfg::kThreads) {
        const int logical = window[e].logical;
        const int word = logical >> 5, bit = logical & 31;
#pragma unroll 1
        for (int w = 0; w < Cfg::kAllowedWords; ++w) {
          uint32_t bits = 0;
#pragma unroll 1
          for (int b0 = 0; b0 < 32 && 32 * w + b0 < nrows; b0 += kBatch) {
            const int rb = 32 * w + b0;
            uint32_t v[kBatch];
#pragma unroll
            for (int u = 0; u < kBatch; ++u) v[u] = mask_row(row0 + min(rb + u, nrows - 1))[word];
#pragma unroll
            for (int u = 0; u < kBatch; ++u) bits |= (rb + u < nrows ? v[u] >> bit & 1u : 0u) << (b0 + u);
          }
          window_allowed[e * Cfg::kAllowedWords + w] = bits;
        }
      }
      __syncthreads();
    }
    for (int i = 0; i < num_tiles; ++i) {
      const int first = i * tile_pages;
      const int npages = min(tile_pages, entries - first);
      cp_async_wait<Cfg::kStages - 2>();
      if constexpr (Wgmma) fence_proxy_async_shared();  // the tensor cores read what cp.async wrote
      __syncthreads();  // tile i landed for every thread; tile i-1's stage is free
      if (i + Cfg::kStages - 1 < num_tiles) issue(i + Cfg::kStages - 1);
      cp_async_commit();
      if (!computes) continue;
      // Bit ps: page slot ps allowed for the lane's row (rows past `rows` are never written).
      uint32_t allowed_lo = 0xfu, allowed_hi = 0xfu;
      if constexpr (masked) {
        // r_lo and r_hi = r_lo + 8 share a word (r_lo - row0 is 16 w + g, g < 8). No branch per
        // slot: a slot past npages reads as no word.
        const int lo = r_lo - row0;
        const uint32_t* words = window_allowed + first * Cfg::kAllowedWords + (lo >> 5);
        uint32_t bits_lo = 0u, bits_hi = 0u;
#pragma unroll
        for (int ps = 0; ps < kTileRows / 16; ++ps) {
          const uint32_t word = ps < npages ? words[ps * Cfg::kAllowedWords] : 0u;
          bits_lo |= (word >> (lo & 31) & 1u) << ps;
          bits_hi |= (word >> ((lo & 31) + 8) & 1u) << ps;
        }
        allowed_lo = r_lo < rows ? bits_lo : 0xfu;
        allowed_hi = r_hi < rows ? bits_hi : 0xfu;
      }

      const char* k_tile = tiles + (i % Cfg::kStages) * 2 * Cfg::kTileBytes;
      float s[8][4];
#pragma unroll
      for (int j = 0; j < 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
      if constexpr (Wgmma) warpgroup_scores<T, D>(s, qa, k_tile);
      else warp_scores<T, D>(s, qa, k_tile, lane);

      // Which of this lane's columns are real tokens the row may attend to. The common case, a
      // tile of full pages and no per-row mask, needs no check per element.
      float tile_max[2] = {-INFINITY, -INFINITY};
      const bool full_tile = npages == tile_pages && window[first + npages - 1].valid == P &&
                             (window[first + npages - 1].logical + 1) * P <= cta_limit_min;
      if (full_tile && !masked) {
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[j][e] *= p.scale_log2;
            tile_max[e / 2] = fmaxf(tile_max[e / 2], s[j][e]);
          }
      } else if (masked && full_tile) {
        // Masks only (its own branch: no test of full_tile per fragment). Pages are >= 16 tokens,
        // so each 8-column fragment j lies in one page slot.
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int ps = (8 * j) >> log2_page;  // the same for every lane
          const bool lo_ok = (allowed_lo >> ps) & 1u, hi_ok = (allowed_hi >> ps) & 1u;
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[j][e] = (e < 2 ? lo_ok : hi_ok) ? s[j][e] * p.scale_log2 : -INFINITY;
            tile_max[e / 2] = fmaxf(tile_max[e / 2], s[j][e]);
          }
        }
      } else {
        // Pages are >= 16 tokens, so each 8-column fragment j lies in one page slot: its slot,
        // length, start and the rows' allowed bits are looked up once per fragment, not per element.
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int ps = (8 * j) >> log2_page;  // the same for every lane
          const bool lo_ok = (allowed_lo >> ps) & 1u, hi_ok = (allowed_hi >> ps) & 1u;
          const bool in = ps < npages;
          const int len = in ? window[first + ps].valid : 0;
          const int start = in ? window[first + ps].logical * P : 0;
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int off = (8 * j + 2 * t + (e & 1)) & (P - 1);  // token within the page
            const bool ok = off < len && (e < 2 ? lo_ok : hi_ok) && start + off < (e < 2 ? limit_lo : limit_hi);
            s[j][e] = ok ? s[j][e] * p.scale_log2 : -INFINITY;
            tile_max[e / 2] = fmaxf(tile_max[e / 2], s[j][e]);
          }
        }
      }
      float m_use[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
        tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
        const float m_new = fmaxf(m[h], tile_max[h]);
        m_use[h] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing yet stays empty
        const float alpha = exp2f(m[h] - m_use[h]);
        m[h] = m_new;
        l[h] *= alpha;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          o[j][2 * h] *= alpha;
          o[j][2 * h + 1] *= alpha;
        }
      }
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[j][e] = exp2f(s[j][e] - m_use[e / 2]);
          l[e / 2] += s[j][e];
        }
      if constexpr (Wgmma) warpgroup_accumulate_values<T, D>(o, s, k_tile + Cfg::kTileBytes);
      else warp_accumulate_values<T, D>(o, s, k_tile + Cfg::kTileBytes, lane);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // state_row_s is written (the loop above may not have run)

  // Write this split's partial state of the lane's two rows.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
  if (!warp_has_rows) return;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = h == 0 ? r_lo : r_hi;
    if (r >= rows) continue;
    const bool empty = l[h] == 0.0f;
    const float inv = empty ? 0.0f : 1.0f / l[h];
    const size_t slot = partial_state_index(head_slot, p.split_stride ? p.split_stride : p.num_splits, split,
                                            p.max_rows, state_row_s[r - row0]);
    float* out = p.partial_o + slot * D;
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
      *reinterpret_cast<float2*>(out + 8 * j + 2 * t) = make_float2(o[j][2 * h] * inv, o[j][2 * h + 1] * inv);
    if (t == 0) p.partial_lse[slot] = empty ? -INFINITY : (m[h] + log2f(l[h])) * kLn2;
  }
}

}  // namespace losa::cuda
