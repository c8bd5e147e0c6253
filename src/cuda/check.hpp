#pragma once
// LOSA_CUDA_CHECK: turns a failed CUDA runtime call into a BackendError. Host-only.
#include <cuda_runtime_api.h>

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
