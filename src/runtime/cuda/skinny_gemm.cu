// The decode-shape GEMM (skinny_gemm.hpp). Each CTA owns 8 * NT weight rows (one n8 tile per
// NT) and a range of K; its W warps take the range's 32-wide K chunks in turns of KP, so that
// every weight byte is loaded exactly once, straight from global memory into mma B fragments:
//
//   lane (g = lane / 4, t = lane % 4) loads 16 bytes of weight row n0 + 8 nt + g at k = 32 c + 8 t,
//   and 16 bytes of x rows g and g + 8 at the same k. The mma sums over a chunk's k in any order
//   as long as A and B agree, so elements 0..3 of the lane's 8 feed one m16n8k16 (in the places
//   of k = 2t, 2t+1, 2t+8, 2t+9) and elements 4..7 the next: no shared memory, no shuffles.
//
// Loads for the next chunk are in flight while the current one multiplies. The warps' partial
// tiles are summed through shared memory; with K split across CTAs each writes its tile to a
// workspace and the last to arrive (a ticket per column tile) adds the splits in order, so the
// result does not depend on timing.
#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../../cuda/common.cuh"
#include "../../cuda/launch.cuh"
#include "../../cuda/mma.cuh"
#include "skinny_gemm.hpp"

namespace losa::runtime::cuda {
namespace {

using losa::cuda::mma_16816;
using bf16 = __nv_bfloat16;

constexpr int kChunk = 32;  // K per chunk: 8 elements per lane, two m16n8k16 steps

struct Params {
  const bf16* x;
  const bf16* w;
  int rows, out, in, splits;
  void* y;
  bool y_f32, accumulate;
  float* partials;
  unsigned* tickets;
};

template <int MT, int NT, int W>
size_t reduce_smem_bytes() {
  return static_cast<size_t>(W) * 16 * MT * (8 * NT + 4) * sizeof(float);
}

// What every warp of a CTA needs: its column tile, K range and fragment row pointers.
template <int MT, int NT>
struct Tile {
  int n0, split, warp, lane, g, t, c_begin, c_end;
  const bf16* w_row[NT];
  bool w_ok[NT];
  const bf16* x_row[MT][2];
  bool x_ok[MT][2];

  __device__ explicit Tile(const Params& p) {
    n0 = blockIdx.x * 8 * NT;
    split = blockIdx.y;
    warp = threadIdx.x / 32;
    lane = threadIdx.x % 32;
    g = lane / 4;
    t = lane % 4;
    const int chunks = (p.in + kChunk - 1) / kChunk;
    c_begin = static_cast<int>(static_cast<int64_t>(split) * chunks / p.splits);
    c_end = static_cast<int>(static_cast<int64_t>(split + 1) * chunks / p.splits);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int n = n0 + 8 * nt + g;
      w_ok[nt] = n < p.out;
      w_row[nt] = p.w + static_cast<size_t>(w_ok[nt] ? n : 0) * p.in + 8 * t;
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = 16 * mt + 8 * h + g;
        x_ok[mt][h] = r < p.rows;
        x_row[mt][h] = p.x + static_cast<size_t>(x_ok[mt][h] ? r : 0) * p.in + 8 * t;
      }
  }
  // in % 8 == 0: a lane's 8 elements of a chunk are all in or all out.
  __device__ bool in_k(int c, const Params& p) const { return c < c_end && c * kChunk + 8 * t < p.in; }
};

// One chunk's two m16n8k16 steps per (row tile, column tile): lane elements 0..3 then 4..7.
template <int MT, int NT>
__device__ __forceinline__ void multiply_chunk(float (&acc)[MT][NT][4], const uint4* wb, const uint4 (*xb)[2]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const uint32_t a_lo[4] = {xb[mt][0].x, xb[mt][1].x, xb[mt][0].y, xb[mt][1].y};
    const uint32_t a_hi[4] = {xb[mt][0].z, xb[mt][1].z, xb[mt][0].w, xb[mt][1].w};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      mma_16816<bf16>(acc[mt][nt], a_lo, wb[nt].x, wb[nt].y);
      mma_16816<bf16>(acc[mt][nt], a_hi, wb[nt].z, wb[nt].w);
    }
  }
}

// The warps' tiles summed through shared memory (`red`, reduce_smem_bytes), then written, or,
// with K split, handed to the column tile's last CTA, which adds the splits in order.
template <int MT, int NT, int W>
__device__ void finish(const float (&acc)[MT][NT][4], float* red, const Params& p, const Tile<MT, NT>& tile) {
  constexpr int kThreads = W * 32;
  constexpr int kRows = 16 * MT, kCols = 8 * NT,
                kStride = kCols + 4;  // padded: fragment stores don't conflict
  // C fragment: c0, c1 at (row g, cols 2t, 2t+1), c2, c3 at row g + 8.
  float* mine = red + tile.warp * kRows * kStride;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int r = 16 * mt + tile.g, col = 8 * nt + 2 * tile.t;
      *reinterpret_cast<float2*>(mine + r * kStride + col) = make_float2(acc[mt][nt][0], acc[mt][nt][1]);
      *reinterpret_cast<float2*>(mine + (r + 8) * kStride + col) = make_float2(acc[mt][nt][2], acc[mt][nt][3]);
    }
  __syncthreads();

  const int n0 = tile.n0, split = tile.split;
  auto store = [&](int r, int n, float v) {
    const size_t at = static_cast<size_t>(r) * p.out + n;
    if (p.y_f32) {
      float* y = static_cast<float*>(p.y) + at;
      *y = p.accumulate ? *y + v : v;
    } else {
      static_cast<bf16*>(p.y)[at] = __float2bfloat16_rn(v);
    }
  };
  constexpr int kPerThread = (kRows * kCols + kThreads - 1) / kThreads;
  float sums[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int idx = threadIdx.x + i * kThreads, r = idx / kCols, col = idx % kCols;
    float s = 0.0f;
    if (idx < kRows * kCols)
#pragma unroll
      for (int wi = 0; wi < W; ++wi) s += red[(wi * kRows + r) * kStride + col];
    sums[i] = s;
  }
  if (p.splits == 1) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int idx = threadIdx.x + i * kThreads, r = idx / kCols, n = n0 + idx % kCols;
      if (idx < kRows * kCols && r < p.rows && n < p.out) store(r, n, sums[i]);
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int idx = threadIdx.x + i * kThreads, r = idx / kCols, n = n0 + idx % kCols;
    if (idx < kRows * kCols && r < p.rows && n < p.out)
      p.partials[(static_cast<size_t>(split) * p.rows + r) * p.out + n] = sums[i];
  }
  __threadfence();  // the tile is visible before the ticket counts it
  __shared__ bool is_last;
  __syncthreads();
  if (threadIdx.x == 0) is_last = atomicAdd(&p.tickets[blockIdx.x], 1u) == static_cast<unsigned>(p.splits - 1);
  __syncthreads();
  if (!is_last) return;
  __threadfence();
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int idx = threadIdx.x + i * kThreads, r = idx / kCols, n = n0 + idx % kCols;
    if (idx >= kRows * kCols || r >= p.rows || n >= p.out) continue;
    float s = 0.0f;
    for (int sp = 0; sp < p.splits; ++sp) s += __ldcg(p.partials + (static_cast<size_t>(sp) * p.rows + r) * p.out + n);
    store(r, n, s);
  }
  if (threadIdx.x == 0) p.tickets[blockIdx.x] = 0u;  // ready for the next launch (graph replays too)
}

template <int MT, int NT>
__device__ void zero(float (&acc)[MT][NT][4]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;
}

// A CTA of W warps; a warp step is KP consecutive chunks (KP = 2: each weight row's 128-byte
// line in one step); step s + 1 loads into registers while step s multiplies.
template <int MT, int NT, int KP, int W>
__global__ void __launch_bounds__(W * 32) skinny_gemm_kernel(const __grid_constant__ Params p) {
  extern __shared__ float red[];
  const Tile<MT, NT> tile(p);
  float acc[MT][NT][4];
  zero(acc);
  const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);
  auto load_w = [&](int c, uint4(&wb)[KP][NT]) {
#pragma unroll
    for (int kp = 0; kp < KP; ++kp) {
      const int k = (c + kp) * kChunk;
      const bool ok = tile.in_k(c + kp, p);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
        wb[kp][nt] = tile.w_ok[nt] && ok ? __ldcs(reinterpret_cast<const uint4*>(tile.w_row[nt] + k)) : zero4;
    }
  };
  auto load_x = [&](int c, uint4(&xb)[KP][MT][2]) {
#pragma unroll
    for (int kp = 0; kp < KP; ++kp) {
      const int k = (c + kp) * kChunk;
      const bool ok = tile.in_k(c + kp, p);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          xb[kp][mt][h] = tile.x_ok[mt][h] && ok ? __ldg(reinterpret_cast<const uint4*>(tile.x_row[mt][h] + k)) : zero4;
    }
  };
  auto load = [&](int c, uint4(&wb)[KP][NT], uint4(&xb)[KP][MT][2]) {
    load_w(c, wb);
    load_x(c, xb);
  };
  auto multiply = [&](const uint4(&wb)[KP][NT], const uint4(&xb)[KP][MT][2]) {
#pragma unroll
    for (int kp = 0; kp < KP; ++kp) multiply_chunk<MT, NT>(acc, wb[kp], xb[kp]);
  };
  constexpr int kStep = W * KP;
  uint4 w_a[KP][NT], x_a[KP][MT][2], w_b[KP][NT], x_b[KP][MT][2];
  int c = tile.c_begin + tile.warp * KP;
  // Launched with PDL, the CTA may start while the previous kernel still runs: the weights are
  // not that kernel's output, so the first step's weights load before waiting for it; x and y
  // only after.
  if (c < tile.c_end) load_w(c, w_a);
  losa::cuda::wait_for_predecessor();
  if (c < tile.c_end) load_x(c, x_a);
  while (c < tile.c_end) {
    const int c1 = c + kStep;
    if (c1 < tile.c_end) load(c1, w_b, x_b);
    multiply(w_a, x_a);
    if (c1 >= tile.c_end) break;
    const int c2 = c1 + kStep;
    if (c2 < tile.c_end) load(c2, w_a, x_a);
    multiply(w_b, x_b);
    c = c2;
  }
  // The next kernel's CTAs may take the SMs this grid leaves from here on.
  losa::cuda::allow_successor();
  finish<MT, NT, W>(acc, red, p, tile);
}

int row_tiles(int rows) { return (rows + 15) / 16; }  // 1: the kernel serves <= 16 rows

using Kernel = void (*)(Params);

// The instances: (row tiles, column tiles per CTA, chunks per warp step, warps per CTA). The
// first two are the automatic choice (choose(), from the sweep in bench/NOTES.md); the others
// exist for `losa bench-model --gemm-sweep`.
struct Instance {
  int mt, nt, kp, warps;
  Kernel kernel;
  size_t smem;
};
template <int MT, int NT, int KP, int W>
Instance instance() {
  return {MT, NT, KP, W, skinny_gemm_kernel<MT, NT, KP, W>, reduce_smem_bytes<MT, NT, W>()};
}
const std::vector<Instance>& instances() {
  static const std::vector<Instance> all{instance<1, 2, 2, 8>(), instance<1, 2, 2, 4>(), instance<1, 4, 2, 8>(),
                                         instance<1, 4, 1, 8>(), instance<1, 8, 1, 8>(), instance<1, 2, 1, 4>()};
  return all;
}

const Instance& matching(int rows, const SkinnyGemmConfig& c) {
  const int mt = row_tiles(rows);
  for (const Instance& i : instances())
    if (i.mt == mt && (c.nt == 0 || i.nt == c.nt) && (c.kp == 0 || i.kp == c.kp) &&
        (c.warps == 0 || i.warps == c.warps))
      return i;
  throw ArgumentError("launch_skinny_gemm", "config", "no compiled instance matches");
}

int resident_ctas(const Instance& i);

// The default family (the first instance's tiles and steps): the most warps per CTA that still
// keeps every CTA resident in one wave; where no size does, 8 warps (many waves, a small tail).
// Measured: a partial second wave costs more than smaller CTAs (bench/NOTES.md).
const Instance& choose(const SkinnyGemmArgs& a, int num_sms) {
  if (a.config.nt || a.config.kp || a.config.warps) return matching(a.rows, a.config);
  const Instance& first = instances().front();
  const int tiles = losa::cuda::ceil_div(a.out, 8 * first.nt);
  for (int warps : {8, 4}) {
    const Instance& i = matching(a.rows, {first.nt, first.kp, warps});
    if (tiles <= resident_ctas(i) * num_sms) return i;
  }
  return first;
}

// CTAs of an instance resident per SM of the current device (registers, threads, shared
// memory), after raising the shared-memory limit where the reduction needs more than 48 KB.
int resident_ctas(const Instance& i) {
  static std::map<std::pair<int, Kernel>, int> known;
  static std::mutex lock;
  int device = 0;
  LOSA_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> guard(lock);
  const auto key = std::make_pair(device, i.kernel);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  if (i.smem > 48 * 1024)
    LOSA_CUDA_CHECK(
        cudaFuncSetAttribute(i.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(i.smem)));
  int ctas = 0;
  LOSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&ctas, i.kernel, i.warps * 32, i.smem));
  return known[key] = std::max(ctas, 1);
}

using losa::cuda::is_aligned;

int splits_for(const SkinnyGemmArgs& a, const SkinnyGemmWorkspace& ws, int num_sms, const Instance& inst) {
  const int tiles = losa::cuda::ceil_div(a.out, 8 * inst.nt);
  const int chunks = losa::cuda::ceil_div(a.in, kChunk);
  int splits = a.splits;
  if (splits <= 0) {
    // Splitting K measured slower wherever the column tiles give every SM one CTA (the SDAR
    // shapes: 256..1536 tiles); split only shapes too narrow for that, into as many splits as
    // give every SM a CTA, every warp at least two steps.
    splits = tiles >= num_sms ? 1 : losa::cuda::ceil_div(num_sms, tiles);
    splits = std::min(splits, std::max(1, chunks / (2 * inst.warps * inst.kp)));
  }
  splits = std::max(1, std::min({splits, chunks, 65535}));  // 65535: the grid's y limit
  if (splits > 1) {
    const size_t per_split = static_cast<size_t>(a.rows) * a.out;
    if (tiles > ws.num_tickets || ws.partials == nullptr) return 1;
    splits = static_cast<int>(std::min<size_t>(splits, ws.partial_floats / per_split));
    splits = std::max(splits, 1);
  }
  return splits;
}

}  // namespace

bool skinny_gemm_applies(int rows, int in, const void* x, const void* w) {
  return rows >= 1 && rows <= kSkinnyMaxRows && in >= 8 && in % 8 == 0 && is_aligned(x, 16) && is_aligned(w, 16);
}

int skinny_gemm_splits(const SkinnyGemmArgs& a, const SkinnyGemmWorkspace& ws, int num_sms) {
  return splits_for(a, ws, num_sms, choose(a, num_sms));
}

void launch_skinny_gemm(const SkinnyGemmArgs& a, const SkinnyGemmWorkspace& ws, int num_sms, cudaStream_t stream) {
  LOSA_CHECK_ARG(a.rows >= 1 && a.rows <= kSkinnyMaxRows, "rows", "must be in [1, ", kSkinnyMaxRows, "], got ", a.rows);
  LOSA_CHECK_ARG(a.out >= 1, "out", "must be >= 1, got ", a.out);
  LOSA_CHECK_ARG(a.in >= 8 && a.in % 8 == 0, "in", "must be a positive multiple of 8, got ", a.in);
  LOSA_CHECK_ARG(a.x && is_aligned(a.x, 16), "x", "must be a 16-byte aligned device pointer");
  LOSA_CHECK_ARG(a.w && is_aligned(a.w, 16), "w", "must be a 16-byte aligned device pointer");
  LOSA_CHECK_ARG(a.y && is_aligned(a.y, a.y_f32 ? 4 : 2), "y", "must be an aligned device pointer");
  LOSA_CHECK_ARG(!a.accumulate || a.y_f32, "accumulate", "needs an fp32 output");
  LOSA_CHECK_ARG(a.splits >= 0, "splits", "must be >= 0 (0 = automatic), got ", a.splits);
  LOSA_CHECK_ARG(num_sms >= 1, "num_sms", "must be >= 1, got ", num_sms);
  const Instance& inst = choose(a, num_sms);
  resident_ctas(inst);  // raises the shared-memory limit before the first launch
  const Params p{a.x, a.w, a.rows, a.out, a.in, splits_for(a, ws, num_sms, inst), a.y, a.y_f32, a.accumulate,
                 ws.partials, ws.tickets};
  const int tiles = losa::cuda::ceil_div(a.out, 8 * inst.nt);
  losa::cuda::launch_kernel(inst.kernel, dim3(tiles, p.splits), dim3(inst.warps * 32), inst.smem, stream, p,
                            a.programmatic && losa::cuda::programmatic_launch_supported());
  losa::cuda::check_launch("skinny_gemm_kernel");
}

SkinnyGemmConfig skinny_gemm_choice(const SkinnyGemmArgs& a, int num_sms) {
  const Instance& i = choose(a, num_sms);
  return {i.nt, i.kp, i.warps};
}

std::vector<SkinnyGemmConfig> skinny_gemm_configs(int rows) {
  std::vector<SkinnyGemmConfig> out;
  for (const Instance& i : instances())
    if (i.mt == row_tiles(rows)) out.push_back({i.nt, i.kp, i.warps});
  return out;
}

}  // namespace losa::runtime::cuda
