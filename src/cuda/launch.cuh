#pragma once
// Kernel launches with programmatic dependent launch (PDL, sm_90): a kernel may be scheduled
// while its predecessor on the stream drains, and waits in wait_for_predecessor() until the
// predecessor's writes are visible; it may read before that only what no earlier kernel writes
// (the decode GEMM's weights). Kernels launched this way call wait_for_predecessor() before they
// touch anything else. The step kernels use it as programmatic_launch_enabled() says (the page
// scores by default, all of a batch's step by default, the others with LOSA_PDL=1); the decode
// GEMM always does on sm_90+.
// Kernels that call allow_successor() let a PDL-launched successor start early; for a successor
// launched without PDL it changes nothing.
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

#include "check.hpp"

namespace losa::cuda {

__device__ __forceinline__ void wait_for_predecessor() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/// Lets the next kernel on the stream be scheduled now: its CTAs become resident and wait in
/// wait_for_predecessor() until this grid has finished. Called early by the small kernels of a
/// step; not by the attention kernel, whose successor would otherwise take SM resources from it.
__device__ __forceinline__ void allow_successor() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/// True when the current device supports PDL (sm_90+), whatever LOSA_PDL says.
inline bool programmatic_launch_supported() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
  return major >= 9;  // an attribute query: cheap, and right on every device of the process
}

/// The default for the step kernels that are off by default, while one engine step is enqueued on
/// this thread (ScopedStepPdl): on for a batch of sequences, off for one.
inline bool& step_pdl_default() {
  thread_local bool on = false;
  return on;
}

/// Sets step_pdl_default() for one engine step and restores it after: every edge of a step gained
/// with PDL in batches and lost on one sequence (bench/NOTES.md, ninth and fifteenth rounds).
class ScopedStepPdl {
 public:
  explicit ScopedStepPdl(bool on) : saved_(step_pdl_default()) { step_pdl_default() = on; }
  ~ScopedStepPdl() { step_pdl_default() = saved_; }
  ScopedStepPdl(const ScopedStepPdl&) = delete;
  ScopedStepPdl& operator=(const ScopedStepPdl&) = delete;

 private:
  bool saved_;
};

/// Whether a kernel is launched with PDL, where the device supports it: LOSA_PDL=1 for every
/// kernel of a step, LOSA_PDL=0 for none; unset, for those whose launcher says `on_by_default`
/// (the page scores: their bounds stream in while the active set is chosen, faster in every
/// measured case) and, within a batch's step, for all (step_pdl_default()).
inline bool programmatic_launch_enabled(bool on_by_default = false) {
  static const int setting = [] {  // 1 all, 0 none, -1 the defaults
    const char* env = std::getenv("LOSA_PDL");
    if (!env || !*env) return -1;
    return std::strcmp(env, "1") == 0 ? 1 : 0;
  }();
  static const bool supported = programmatic_launch_supported();
  return supported && (setting == 1 || (setting == -1 && (on_by_default || step_pdl_default())));
}

/// `programmatic`: launch with PDL (the kernel must call wait_for_predecessor() before it reads
/// anything the previous kernel writes); by default as LOSA_PDL says for a kernel off by default.
template <typename Params>
void launch_kernel(void (*kernel)(Params), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   const Params& params, bool programmatic = programmatic_launch_enabled()) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = programmatic ? 1 : 0;
  LOSA_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, params));
}

}  // namespace losa::cuda
