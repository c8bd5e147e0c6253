#pragma once
// LOSA_CUDA_CHECK: turns a failed CUDA runtime call into a BackendError; is_aligned for the
// pointer checks before vector loads. Host-only.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "losa/errors.hpp"

#define LOSA_CUDA_CHECK(expr)                                                            \
  do {                                                                                   \
    const cudaError_t losa_status_ = (expr);                                             \
    if (losa_status_ != cudaSuccess)                                                     \
      throw ::losa::BackendError(std::string(#expr) + " failed: " +                      \
                                 cudaGetErrorString(losa_status_) + " at " + __FILE__ + \
                                 ":" + std::to_string(__LINE__));                        \
  } while (0)

namespace losa::cuda {

/// True when `p` is a multiple of `bytes` (the widest load a kernel makes through it).
inline bool is_aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace losa::cuda
