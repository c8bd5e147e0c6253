#pragma once
// 64-row tiles in shared memory and the warp-level matrix steps on them, shared by the paged
// attention, QUEST scoring and SparseD mass kernels.
//
// A tile holds 64 rows of D 16-bit elements (64 tokens of keys or values, or the key bounds of
// 64 pages), 16-byte chunks swizzled (mma.cuh). Each warp owns 16 query rows; its scores against
// a tile are 8 n-tiles of 8 columns: s[j][e] is row g + 8*(e/2), column 8j + 2t + e%2.
#include "common.cuh"
#include "mma.cuh"
#include "wgmma.cuh"

namespace losa::cuda {

constexpr int kTileRows = 64;

template <typename T, int D>
struct TileShape {
  static constexpr int kRowChunks = D * static_cast<int>(sizeof(T)) / 16;
  static constexpr int kBytes = kTileRows * D * static_cast<int>(sizeof(T));
  static constexpr int kKSteps = D / 16;  // mma k-steps over the head dim
};

/// Issues the cp.async copies of one tile. row_src(row) gives the global address of a row, or
/// nullptr for a row to zero-fill (masked tokens must hold zeros: 0 * NaN would poison P V).
template <typename T, int D, int kThreads, typename RowSrc>
__device__ __forceinline__ void load_tile_async(char* tile, const void* any_valid_address,
                                                RowSrc row_src) {
  using S = TileShape<T, D>;
  const uint32_t base = smem_addr(tile);
#pragma unroll 4
  for (int c = threadIdx.x; c < kTileRows * S::kRowChunks; c += kThreads) {
    const int row = c / S::kRowChunks, chunk = c % S::kRowChunks;
    const char* src = static_cast<const char*>(row_src(row));
    cp_async_16(base + swizzled_offset(row, chunk, S::kRowChunks),
                src ? src + chunk * 16 : any_valid_address, src ? 16 : 0);
  }
}

/// Issues the cp.async copies of one 64-token K tile and V tile gathered from up to four pages
/// (page size 16, 32 or 64). page_slot(ps) gives page slot ps's element offset of its [P, D]
/// block in keys/values and its valid tokens (0 for a slot past the list), as `.offset` and
/// `.valid`; it is asked per row step (a shared-memory read in the attention kernel) rather than
/// taken as arrays, which would hold 12 registers through the main loop. Each thread copies a
/// fixed 16-byte column of rows r0, r0 + R, ... (R a multiple of 8), so its swizzled shared
/// address is fixed per row step and only the page and slot vary: a few instructions per copy.
/// WgmmaLayout: the tiles in wgmma.cuh's layout (128-byte column blocks) instead of mma.cuh's.
template <typename T, int D, int kThreads, bool WgmmaLayout = false, typename PageSlot>
__device__ __forceinline__ void load_kv_pages_async(char* k_tile, char* v_tile, const T* keys,
                                                    const T* values, PageSlot&& page_slot, int log2_page) {
  using S = TileShape<T, D>;
  constexpr int kRowsPerPass = kThreads / S::kRowChunks;
  static_assert(kRowsPerPass % 8 == 0, "the swizzle assumes rows stepping by multiples of 8");
  constexpr int kRowBytes = WgmmaLayout ? 128 : S::kRowChunks * 16;  // between rows of one column block
  const int chunk = threadIdx.x % S::kRowChunks, r0 = threadIdx.x / S::kRowChunks;
  const uint32_t lane_offset = WgmmaLayout ? wgmma_tile_offset<kTileRows>(r0, chunk)
                                           : static_cast<uint32_t>(swizzled_offset(r0, chunk, S::kRowChunks));
  const uint32_t k_base = smem_addr(k_tile) + lane_offset, v_base = smem_addr(v_tile) + lane_offset;
  const int page_mask = (1 << log2_page) - 1;
#pragma unroll
  for (int i = 0; i < kTileRows / kRowsPerPass; ++i) {
    const int row = r0 + i * kRowsPerPass;
    const int ps = row >> log2_page, slot = row & page_mask;
    const auto page = page_slot(ps);
    const bool ok = slot < page.valid;
    const size_t e = ok ? page.offset + static_cast<size_t>(slot) * D + chunk * 8 : 0;
    const uint32_t dst = i * kRowsPerPass * kRowBytes;
    cp_async_16(k_base + dst, keys + e, ok ? 16 : 0);
    cp_async_16(v_base + dst, values + e, ok ? 16 : 0);
  }
}

/// A fragments of a warp's 16 query rows (rows g and g+8 of this lane), straight from global.
/// A null row reads as zeros.
template <typename T, int D>
__device__ __forceinline__ void load_query_fragments(uint32_t (&qa)[D / 16][4], const T* row_lo,
                                                     const T* row_hi, int lane) {
  const int t = lane % 4;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int col = kk * 16 + 2 * t;
    qa[kk][0] = row_lo ? *reinterpret_cast<const uint32_t*>(row_lo + col) : 0u;
    qa[kk][1] = row_hi ? *reinterpret_cast<const uint32_t*>(row_hi + col) : 0u;
    qa[kk][2] = row_lo ? *reinterpret_cast<const uint32_t*>(row_lo + col + 8) : 0u;
    qa[kk][3] = row_hi ? *reinterpret_cast<const uint32_t*>(row_hi + col + 8) : 0u;
  }
}

/// s += a B^T for one 16-wide k step (kk) of the tile's 64 rows (tokens or pages), a being the
/// warp's A fragment for that step.
template <typename T, int D>
__device__ __forceinline__ void warp_scores_step(float (&s)[8][4], const uint32_t (&a)[4], uint32_t tile_base,
                                                 int kk, int lane) {
  using S = TileShape<T, D>;
#pragma unroll
  for (int j2 = 0; j2 < 4; ++j2) {
    const int row = 16 * j2 + (lane % 8) + (lane / 16) * 8;
    uint32_t b[4];
    ldmatrix_x4(b, tile_base + swizzled_offset(row, 2 * kk + (lane / 8) % 2, S::kRowChunks));
    mma_16816<T>(s[2 * j2], a, b[0], b[1]);
    mma_16816<T>(s[2 * j2 + 1], a, b[2], b[3]);
  }
}

/// s += A B^T with A the warp's fragments and B the tile's 64 rows (tokens or pages).
template <typename T, int D>
__device__ __forceinline__ void warp_scores(float (&s)[8][4], const uint32_t (&a)[D / 16][4],
                                            const char* tile, int lane) {
  const uint32_t base = smem_addr(tile);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) warp_scores_step<T, D>(s, a[kk], base, kk, lane);
}

/// The A fragment of P for k step kk (tokens 16 kk .. 16 kk + 15), mma.sync's and wgmma's alike.
template <typename T>
__device__ __forceinline__ void pack_probability_fragment(uint32_t (&a)[4], const float (&p)[8][4], int kk) {
  a[0] = Elem<T>::pack(p[2 * kk][0], p[2 * kk][1]);
  a[1] = Elem<T>::pack(p[2 * kk][2], p[2 * kk][3]);
  a[2] = Elem<T>::pack(p[2 * kk + 1][0], p[2 * kk + 1][1]);
  a[3] = Elem<T>::pack(p[2 * kk + 1][2], p[2 * kk + 1][3]);
}

/// o += P V with P the warp's probabilities s (16 rows x 64 tokens) and V the tile.
template <typename T, int D>
__device__ __forceinline__ void warp_accumulate_values(float (&o)[D / 8][4], const float (&p)[8][4],
                                                       const char* tile, int lane) {
  using S = TileShape<T, D>;
  const uint32_t base = smem_addr(tile);
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {  // 16 tokens per k-step
    uint32_t a[4];
    pack_probability_fragment<T>(a, p, kk);
    const int row = 16 * kk + (lane % 8) + ((lane / 8) % 2) * 8;
#pragma unroll
    for (int j2 = 0; j2 < D / 16; ++j2) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, base + swizzled_offset(row, 2 * j2 + lane / 16, S::kRowChunks));
      mma_16816<T>(o[2 * j2], a, b[0], b[1]);
      mma_16816<T>(o[2 * j2 + 1], a, b[2], b[3]);
    }
  }
}

/// The warpgroup forms of warp_scores and warp_accumulate_values (sm_90a): the same fragments
/// and accumulators, the CTA's four warps of a warpgroup multiplying their 64 rows together
/// against a tile in wgmma.cuh's layout. Every thread of the warpgroup must call them.
template <typename T, int D>
__device__ __forceinline__ void warpgroup_scores(float (&s)[8][4], uint32_t (&a)[D / 16][4], const char* k_tile) {
  const uint32_t base = smem_addr(k_tile);
  wgmma_pin(s);
  wgmma_pin(a);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    // K-major: a k step is 32 bytes of each row's 128-byte column block (kk / 4).
    const uint64_t desc = wgmma_descriptor(base + (kk / 4) * (kTileRows * 128) + (kk % 4) * 32, 16, 1024);
    wgmma_rs<T, 64, false>(s, a[kk], desc, kk > 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_pin(s);
}

template <typename T, int D>
__device__ __forceinline__ void warpgroup_accumulate_values(float (&o)[D / 8][4], const float (&p)[8][4],
                                                            const char* v_tile) {
  const uint32_t base = smem_addr(v_tile);
  uint32_t a[4][4];
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) pack_probability_fragment<T>(a[kk], p, kk);
  wgmma_pin(o);
  wgmma_pin(a);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    // MN-major (V's rows are tokens, the k dimension): a k step is 16 rows of 128 bytes; the
    // head dim's 64-element column blocks lie kTileRows * 128 bytes apart.
    const uint64_t desc = wgmma_descriptor(base + kk * 16 * 128, kTileRows * 128, 1024);
    wgmma_rs<T, D, true>(o, a[kk], desc, 1);
  }
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_pin(o);
}

}  // namespace losa::cuda
