#pragma once
// Hopper's warpgroup matrix multiply (wgmma, sm_90a only) for the attention kernel: a warpgroup
// of four warps multiplies its 64 rows, A from registers (the same per-warp fragments as
// mma.sync's m16n8k16, so the query and probability fragments carry over), B from a shared tile
// read by the tensor cores themselves (no ldmatrix), asynchronously.
//
// Tiles for wgmma use the 128-byte swizzle the hardware applies: 64 rows of D elements stored as
// D / 64 column blocks of [64 rows][128 bytes], 16-byte chunk c of row r at chunk (c ^ r % 8)
// (wgmma_tile_offset; at D = 64 the same bytes as tile.cuh's layout). The tile's base must be
// 1024-byte aligned. A K tile is B "K-major" for Q K^T; a V tile is B "MN-major" (transposed)
// for P V.
//
// Accumulator d[j][e] of m64nNk16: warp w of the group holds rows 16 w + g (e < 2) and
// 16 w + g + 8, column 8 j + 2 t + e % 2 (g = lane / 4, t = lane % 4): mma.sync's C layout per
// n-tile, so the softmax code of the mma.sync path serves both.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

// wgmma exists in sm_90a device code only; elsewhere the wrappers trap (never launched: the host
// selects the wgmma instance only on sm_90 devices in a build with sm_90a code).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LOSA_HAVE_WGMMA 1
#else
#define LOSA_HAVE_WGMMA 0
#endif

namespace losa::cuda {

__device__ __forceinline__ void wgmma_unavailable() {
#ifdef __CUDA_ARCH__
  __trap();
#endif
}

/// Byte offset of 16-byte chunk `chunk` of row `row` in a wgmma tile of kRows rows.
template <int kRows>
__host__ __device__ __forceinline__ uint32_t wgmma_tile_offset(int row, int chunk) {
  return (chunk >> 3) * (kRows * 128) + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
}

/// Shared-memory matrix descriptor with the 128-byte swizzle: start address, leading-dimension
/// byte offset (the stride between 64-element column blocks of an MN-major operand; unused for
/// K-major), stride byte offset (between groups of 8 rows: 1024).
__device__ __forceinline__ uint64_t wgmma_descriptor(uint32_t smem_address, uint32_t leading_bytes,
                                                     uint32_t stride_bytes) {
  return static_cast<uint64_t>((smem_address & 0x3FFFF) >> 4) | static_cast<uint64_t>(leading_bytes >> 4) << 16 |
         static_cast<uint64_t>(stride_bytes >> 4) << 32 | uint64_t{1} << 62;
}

/// Orders the warpgroup's register writes before the next wgmma reads them.
__device__ __forceinline__ void wgmma_fence() {
#if LOSA_HAVE_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if LOSA_HAVE_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if LOSA_HAVE_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
/// Makes this thread's generic-proxy shared writes (cp.async's) visible to the tensor cores'
/// async-proxy reads; before the barrier after which wgmma reads the tile.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if LOSA_HAVE_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
/// Pins accumulator registers at this point of the program: the compiler may neither read them
/// before the wait that completes a wgmma nor move a write past the wgmma that reads them.
template <int R>
__device__ __forceinline__ void wgmma_pin(float (&d)[R][4]) {
#pragma unroll
  for (int j = 0; j < R; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[j][e])::"memory");
}

/// The same for A fragments: PTX wants the registers a wgmma reads written before its fence, and
/// nothing ties a fragment's packing to the fence otherwise.
template <int R>
__device__ __forceinline__ void wgmma_pin(uint32_t (&a)[R][4]) {
#pragma unroll
  for (int j = 0; j < R; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[j][e])::"memory");
}

/// d (+)= A B for one k step of 16: A the warpgroup's 64 x 16 fragment in registers, B the
/// 16 x N operand `desc_b` describes (TransposeB: MN-major). accumulate = 0 overwrites d.
template <typename T, int N, bool TransposeB>
struct WgmmaRs;

// The asm where wgmma exists; a trap elsewhere (never launched there).
#if LOSA_HAVE_WGMMA
#define LOSA_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define LOSA_WGMMA_ASM(...) wgmma_unavailable()
#endif

// One specialisation per element type (PTX_TYPE: its name in the instruction): N = 64.
#define LOSA_WGMMA_RS_N64(CPP_TYPE, PTX_TYPE)                                                             \
  template <bool TransposeB>                                                                               \
  struct WgmmaRs<CPP_TYPE, 64, TransposeB> {                                                                \
    static __device__ __forceinline__ void run(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc_b, \
                                               int accumulate) {                                           \
      LOSA_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                          \
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE                       \
                     " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "     \
                     "{%32,%33,%34,%35}, %36, p, 1, 1, %38;\n}\n"                                  \
                     : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), \
        "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), \
        "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), \
        "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), \
        "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), \
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])                     \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate),           \
                       "n"(TransposeB ? 1 : 0));                                                           \
    }                                                                                                      \
  };

// One specialisation per element type (PTX_TYPE: its name in the instruction): N = 128.
#define LOSA_WGMMA_RS_N128(CPP_TYPE, PTX_TYPE)                                                             \
  template <bool TransposeB>                                                                               \
  struct WgmmaRs<CPP_TYPE, 128, TransposeB> {                                                                \
    static __device__ __forceinline__ void run(float (&d)[16][4], const uint32_t (&a)[4], uint64_t desc_b, \
                                               int accumulate) {                                           \
      LOSA_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                          \
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE                       \
                     " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "     \
                     "{%64,%65,%66,%67}, %68, p, 1, 1, %70;\n}\n"                                  \
                     : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), \
        "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), \
        "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), \
        "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), \
        "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), \
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), \
        "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), \
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), \
        "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), \
        "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), \
        "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), \
        "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), \
        "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), \
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])                     \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate),           \
                       "n"(TransposeB ? 1 : 0));                                                           \
    }                                                                                                      \
  };

LOSA_WGMMA_RS_N64(__nv_bfloat16, "bf16")
LOSA_WGMMA_RS_N64(__half, "f16")
LOSA_WGMMA_RS_N128(__nv_bfloat16, "bf16")
LOSA_WGMMA_RS_N128(__half, "f16")
#undef LOSA_WGMMA_RS_N64
#undef LOSA_WGMMA_RS_N128
#undef LOSA_WGMMA_ASM

template <typename T, int N, bool TransposeB>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t desc_b, int accumulate) {
  WgmmaRs<T, N, TransposeB>::run(d, a, desc_b, accumulate);
}

}  // namespace losa::cuda
