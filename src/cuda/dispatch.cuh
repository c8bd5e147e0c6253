#pragma once
// The one place where run-time sizes become template arguments. Unsupported values fail loudly.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "losa/dtype.hpp"
#include "losa/errors.hpp"

namespace losa::cuda {

/// Throws ArgumentError unless head_dim has a compiled kernel instance.
inline void check_head_dim_dispatch(int head_dim) {
  if (head_dim != 64 && head_dim != 128)
    throw ArgumentError("cuda dispatch", "head_dim",
                        "must be 64 or 128 on the GPU, got " + std::to_string(head_dim));
}

/// Throws ArgumentError unless (dtype, head_dim) has a compiled kernel instance.
inline void check_dispatch(DType dtype, int head_dim) {
  if (dtype != DType::bf16 && dtype != DType::f16)
    throw ArgumentError("cuda dispatch", "dtype",
                        std::string("must be bf16 or f16 on the GPU, got ") + dtype_name(dtype));
  check_head_dim_dispatch(head_dim);
}

}  // namespace losa::cuda

/// Calls fn<T, D>(args...) for the element type and head dim given at run time.
#define LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, fn, ...)      \
  do {                                                              \
    ::losa::cuda::check_dispatch(dtype, head_dim);                  \
    if ((dtype) == ::losa::DType::bf16) {                           \
      if ((head_dim) == 64) fn<__nv_bfloat16, 64>(__VA_ARGS__);     \
      else fn<__nv_bfloat16, 128>(__VA_ARGS__);                     \
    } else {                                                        \
      if ((head_dim) == 64) fn<__half, 64>(__VA_ARGS__);            \
      else fn<__half, 128>(__VA_ARGS__);                            \
    }                                                               \
  } while (0)

/// Calls fn<D>(args...) for the head dim given at run time (kernels that read no K/V elements).
#define LOSA_DISPATCH_HEAD_DIM(head_dim, fn, ...)  \
  do {                                             \
    ::losa::cuda::check_head_dim_dispatch(head_dim); \
    if ((head_dim) == 64) fn<64>(__VA_ARGS__);     \
    else fn<128>(__VA_ARGS__);                     \
  } while (0)
