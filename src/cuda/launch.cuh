#pragma once
// Kernel launches with programmatic dependent launch (PDL, sm_90): a kernel may be scheduled
// while its predecessor on the stream drains, and waits in wait_for_predecessor() until the
// predecessor's writes are visible; it may read before that only what no earlier kernel writes
// (the decode GEMM's weights). Kernels launched this way call wait_for_predecessor() before they
// touch anything else. The attention kernels use it only with LOSA_PDL=1 (no clear gain on the
// H100, bench/NOTES.md); the decode GEMM always does on sm_90+ (programmatic_launch_supported).
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

/// True when LOSA_PDL is "1" and the current device supports PDL (sm_90+).
inline bool programmatic_launch_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("LOSA_PDL");
    return env && std::strcmp(env, "1") == 0 && programmatic_launch_supported();
  }();
  return enabled;
}

/// `programmatic`: launch with PDL (the kernel must call wait_for_predecessor() before it reads
/// anything the previous kernel writes); by default as LOSA_PDL says.
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
