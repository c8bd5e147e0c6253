#pragma once
// Weight-streaming GEMM for the decode shapes: y [rows, out] = x [rows, in] . w [out, in]^T with
// few rows (a denoising step of one sequence: rows = B <= 16). There the GEMM is a read of the
// weights and nothing else; cuBLAS reaches 66-88% of copy bandwidth on SDAR-8B's shapes, this
// kernel 78-91% (bench/results/2026-11-27-h100-decode-gemm). bf16 operands, fp32 accumulation
// (mma.sync), deterministic: any split-K partials are summed in a fixed order by the last CTA of
// each column tile.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace losa::runtime::cuda {

/// A compiled instance: column tiles (8 weight rows each) per CTA, 32-wide K chunks per warp
/// step, warps per CTA; all 0 = the automatic choice.
struct SkinnyGemmConfig {
  int nt = 0, kp = 0, warps = 0;
};

struct SkinnyGemmArgs {
  const __nv_bfloat16* x = nullptr;  // [rows, in], 16-byte aligned rows
  const __nv_bfloat16* w = nullptr;  // [out, in], 16-byte aligned rows
  int rows = 0, out = 0, in = 0;
  void* y = nullptr;  // [rows, out]: bf16, or fp32 (overwritten or added onto)
  bool y_f32 = false, accumulate = false;
  int splits = 0;           // K splits across CTAs; 0 = chosen from the shape
  SkinnyGemmConfig config;  // an instance other than the default (sweeps, tests)
  /// Launch with programmatic dependent launch (sm_90+): the CTAs start streaming weights while
  /// the previous kernel on the stream finishes, and wait for it before reading x or y. So w
  /// must not be the output of the kernel launched just before (weights never are).
  bool programmatic = true;
};

/// Scratch the split-K path needs (fp32 partials and one ticket per column tile); zeroed once,
/// every launch leaves the tickets zero again.
struct SkinnyGemmWorkspace {
  float* partials = nullptr;
  size_t partial_floats = 0;
  unsigned* tickets = nullptr;
  int num_tickets = 0;
};

constexpr int kSkinnyMaxRows = 16;

/// True when the kernel serves this call: 1..16 rows (past 16 cuBLAS measured faster), `in` a
/// multiple of 8 (16-byte rows), x and w 16-byte aligned. Otherwise the caller uses cuBLAS.
bool skinny_gemm_applies(int rows, int in, const void* x, const void* w);

/// The K splits the kernel would use for this shape on this device (splits = 0), after the
/// workspace's limits.
int skinny_gemm_splits(const SkinnyGemmArgs& a, const SkinnyGemmWorkspace& ws, int num_sms);

/// Enqueues y = x . w^T on `stream`; throws ArgumentError naming a bad argument (nothing queued)
/// and BackendError if the launch fails.
void launch_skinny_gemm(const SkinnyGemmArgs& a, const SkinnyGemmWorkspace& ws, int num_sms, cudaStream_t stream);

/// The instance a call runs: a.config, or the automatic choice for the shape.
SkinnyGemmConfig skinny_gemm_choice(const SkinnyGemmArgs& a, int num_sms);

/// The instances compiled for `rows`.
std::vector<SkinnyGemmConfig> skinny_gemm_configs(int rows);

}  // namespace losa::runtime::cuda
