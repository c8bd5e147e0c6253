#include <algorithm>
#include <climits>
#include <atomic>
#include <type_traits>

#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "losa/cuda/device.hpp"
#include "paged_attention.cuh"

namespace losa::cuda {

int choose_num_splits(int ctas_per_split, int max_tiles_per_kv_head, int resident_ctas) {
  // Rounded down: a split more would start a second wave, most of it idle, for uniform work
  // (8 sequences x 8 KV heads on 264 slots: 5 splits gave 320 CTAs, 4 give 256).
  const int want = std::max(1, resident_ctas / std::max(1, ctas_per_split));
  return std::max(1, std::min(want, std::max(1, max_tiles_per_kv_head)));
}

namespace {
std::atomic<int> forced_stages{0};
std::atomic<int> forced_mma{0};  // AttentionMma

/// The build holds sm_90a device code (CMake's LOSA_CUDA_ARCHS names 90a), which wgmma needs.
constexpr bool kBuiltForSm90a =
#ifdef LOSA_BUILT_FOR_SM90A
    true;
#else
    false;
#endif

/// For the current device (a process may drive several kinds): 0 unknown, 1 no, 2 yes.
constexpr int kCachedDevices = 64;
std::atomic<int> device_is_sm90[kCachedDevices];

bool wgmma_available() {
  if (!kBuiltForSm90a) return false;
  int device = 0;
  LOSA_CUDA_CHECK(cudaGetDevice(&device));
  auto query = [device] {
    int major = 0, minor = 0;
    LOSA_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    LOSA_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    return major == 9 && minor == 0;
  };
  if (device < 0 || device >= kCachedDevices) return query();
  int known = device_is_sm90[device].load(std::memory_order_relaxed);
  if (known == 0) {
    known = query() ? 2 : 1;
    device_is_sm90[device].store(known, std::memory_order_relaxed);
  }
  return known == 2;
}
}  // namespace

bool attention_wgmma_available() { return wgmma_available(); }

void force_attention_mma(AttentionMma mma) {
  LOSA_CHECK_ARG(mma != AttentionMma::wgmma || wgmma_available(), "mma",
                 "wgmma needs an sm_90 device and a build with sm_90a code (LOSA_CUDA_ARCHS with 90a)");
  forced_mma = static_cast<int>(mma);
}

bool attention_uses_wgmma(int max_rows) {
  switch (static_cast<AttentionMma>(forced_mma.load())) {
    case AttentionMma::wgmma: return true;
    case AttentionMma::mma_sync: return false;
    case AttentionMma::automatic: break;
  }
  // A CTA of fewer rows keeps mma.sync: its warps without rows skip the tile (B = 4 dense, 16
  // rows), where a warpgroup would multiply 64.
  return max_rows >= 64 && wgmma_available();
}

template <typename T, int D>
int attention_stages();

namespace {

/// Above 48 KB a kernel needs an explicit opt-in; once per instance, outside any capture (the
/// plan's occupancy query comes first).
template <typename T, int D, int Stages, int Warps, bool Masked, bool Wgmma>
void opt_in_smem() {
  using Cfg = PagedAttentionConfig<T, D, Stages, Warps, Masked, Wgmma>;
  static const cudaError_t attr = cudaFuncSetAttribute(paged_attention_kernel<T, D, Stages, Warps, Masked, Wgmma>,
                                                       cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  LOSA_CUDA_CHECK(attr);
}

template <typename T, int D, int Stages, int Warps, bool Masked, bool Wgmma = false>
int resident_per_sm() {
  using Cfg = PagedAttentionConfig<T, D, Stages, Warps, Masked, Wgmma>;
  opt_in_smem<T, D, Stages, Warps, Masked, Wgmma>();
  int blocks = 0;
  LOSA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &blocks, paged_attention_kernel<T, D, Stages, Warps, Masked, Wgmma>, Cfg::kThreads, Cfg::kSmemBytes));
  return std::max(1, blocks);
}

template <typename T, int D, int Stages, int Warps, bool Masked, bool Wgmma>
void launch_config(const PagedAttentionParams& p, int num_seqs, cudaStream_t stream) {
  using Cfg = PagedAttentionConfig<T, D, Stages, Warps, Masked, Wgmma>;
  opt_in_smem<T, D, Stages, Warps, Masked, Wgmma>();
  const dim3 grid(ceil_div(p.max_rows, Cfg::kRows), p.num_splits, num_seqs * p.kv.num_kv_heads);
  launch_kernel(paged_attention_kernel<T, D, Stages, Warps, Masked, Wgmma>, grid, Cfg::kThreads, Cfg::kSmemBytes,
                stream, p);
  check_launch("paged_attention_kernel");
}

/// The one choice of the kernel instance for max_rows rows (masked or not) on this device:
/// fn(stages, warps, masked, wgmma) as std::integral_constant, so that the plan's occupancy
/// query and the launch see the same one.
template <typename T, int D, typename Fn>
void with_instance(int max_rows, bool masked, Fn&& fn) {
  const bool wide = attention_rows_per_cta(max_rows) == 128;
  const bool wgmma = !masked && attention_uses_wgmma(max_rows);
  auto with_mask = [&](auto stages, auto warps) {
    if (masked) fn(stages, warps, std::true_type{}, std::false_type{});
    else if (wgmma) fn(stages, warps, std::false_type{}, std::true_type{});
    else fn(stages, warps, std::false_type{}, std::false_type{});
  };
  auto with_warps = [&](auto stages) {
    if (wide) with_mask(stages, std::integral_constant<int, 8>{});
    else with_mask(stages, std::integral_constant<int, 4>{});
  };
  if (attention_stages<T, D>() == 3) with_warps(std::integral_constant<int, 3>{});
  else with_warps(std::integral_constant<int, 2>{});
}

/// One plan serves the dense step (unmasked) and the sparse ones (masked or not): the fewer
/// resident CTAs of the two instances decide its splits.
template <typename T, int D>
void resident_ctas_per_sm(int max_rows, int& out) {
  out = INT_MAX;
  for (bool masked : {false, true})
    with_instance<T, D>(max_rows, masked, [&](auto stages, auto warps, auto m, auto wg) {
      out = std::min(out, resident_per_sm<T, D, stages, warps, m, wg>());
    });
}

template <typename T, int D>
void launch(const PagedAttentionParams& p, int num_seqs, cudaStream_t stream) {
  with_instance<T, D>(p.max_rows, p.mask.bits != nullptr, [&](auto stages, auto warps, auto masked, auto wgmma) {
    launch_config<T, D, stages, warps, masked, wgmma>(p, num_seqs, stream);
  });
}

// The largest CTA's footprint decides.
template <typename T, int D>
bool three_stages_fit() {
  return shared_memory_per_block_optin() >= PagedAttentionConfig<T, D, 3, 8, true>::kSmemBytes;
}
}  // namespace

void force_attention_stages(int stages) {
  LOSA_CHECK_ARG(stages == 0 || stages == 2 || stages == 3, "stages", "must be 0 (automatic), 2 or 3, got ", stages);
  if (stages == 3) {
    const bool fits = three_stages_fit<__nv_bfloat16, 128>();
    const int needed = PagedAttentionConfig<__nv_bfloat16, 128, 3, 8, true>::kSmemBytes;
    LOSA_CHECK_ARG(fits, "stages", "3 needs ", needed,
                   " bytes of shared memory per block at head dim 128; this device allows ",
                   shared_memory_per_block_optin());
  }
  forced_stages = stages;
}

namespace {
/// Every instance of the 3-stage depth holds as many CTAs per SM as its 2-stage twin (named
/// here, not through with_instance, which asks attention_stages).
template <typename T, int D>
bool three_stages_keep_residency() {
  auto keeps = [](auto warps, auto masked) {
    return resident_per_sm<T, D, 3, warps, masked>() >= resident_per_sm<T, D, 2, warps, masked>();
  };
  using Four = std::integral_constant<int, 4>;
  using Eight = std::integral_constant<int, 8>;
  return keeps(Four{}, std::false_type{}) && keeps(Four{}, std::true_type{}) && keeps(Eight{}, std::false_type{}) &&
         keeps(Eight{}, std::true_type{});
}
}  // namespace

template <typename T, int D>
int attention_stages() {
  if (forced_stages != 0) return forced_stages;
  // Head dim 128: 2 stages beat 3 on the H100 everywhere measured at the same residency (the
  // 4-warp instance's registers hold it at 2 CTAs per SM, the 8-warp one's at 1, either depth;
  // bench/NOTES.md, eleventh round: dense 64K B = 4 -5%, B = 16 -3%, QUEST -5%, the batch -2 to
  // -4%; B = 32 and 64 equal), and they are what sm_86/89 can hold.
  if constexpr (D == 128) {
    return 2;
  } else {
    // Head dim 64: 3 stages where they fit and cost no residency. On the H100 registers hold
    // either depth at the same CTAs per SM (3 kept); on sm_86/89 (100 KB of shared memory per
    // SM) a 3-stage CTA (~55 KB) fits once per SM where two 2-stage ones (~39 KB) fit: 2 there.
    // Decided once per process, as the shared-memory opt-in is (one device per process).
    static const int stages = three_stages_fit<T, D>() && three_stages_keep_residency<T, D>() ? 3 : 2;
    return stages;
  }
}

int attention_stages(DType dtype, int head_dim) {
  check_dispatch(dtype, head_dim);
  // Both 16-bit types have the same tile bytes; only the head dim changes the footprint.
  return head_dim == 64 ? attention_stages<__nv_bfloat16, 64>() : attention_stages<__nv_bfloat16, 128>();
}

int attention_rows_per_cta(int max_rows) { return max_rows > 64 ? 128 : 64; }

int attention_resident_ctas(DType dtype, int head_dim, int max_rows) {
  int per_sm = 1;
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, resident_ctas_per_sm, max_rows, per_sm);
  return per_sm * multiprocessor_count();
}

void launch_paged_attention(DType dtype, int head_dim, const PagedAttentionParams& p, int num_seqs,
                            cudaStream_t stream) {
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, num_seqs, stream);
}

}  // namespace losa::cuda
