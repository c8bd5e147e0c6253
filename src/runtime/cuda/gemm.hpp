#pragma once
// The GEMMs of the forward: bf16 operands, fp32 accumulation. Activations are row-major
// [rows, in]; weights are PyTorch's Linear layout [out, in], so y = x W^T. The output is bf16,
// or fp32 added onto (the residual stream: y += x W^T). Decode shapes (<= 16 rows) go to the
// weight-streaming kernel (skinny_gemm.hpp), everything else to cuBLAS.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "losa/cuda/device_buffer.hpp"
#include "skinny_gemm.hpp"

namespace losa::runtime::cuda {

/// Which kernel serves a call: the decode-shape kernel where it applies (automatic), or always
/// cuBLAS (the benchmark's comparison; LOSA_GEMM=cublas sets it for a whole run).
enum class GemmKernel { automatic, cublas };

class Gemm {
 public:
  /// A handle bound to `stream`, with its own workspaces so that captured graphs never allocate.
  explicit Gemm(cudaStream_t stream, GemmKernel kernel = kernel_from_environment());
  static GemmKernel kernel_from_environment();
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  /// y [rows, out] bf16 = x [rows, in] bf16 . w [out, in]^T
  void to_bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t rows, int64_t out, int64_t in,
               __nv_bfloat16* y);
  /// y [rows, out] fp32 (+)= x . w^T: accumulate adds onto y (beta = 1), else overwrites.
  void to_f32(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t rows, int64_t out, int64_t in, float* y,
              bool accumulate);
  /// True when a call with these operands runs the decode-shape kernel, false: cuBLAS.
  bool serves_with_decode_kernel(const void* x, const void* w, int64_t rows, int64_t in) const;

 private:
  void gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t rows, int64_t out, int64_t in, void* y,
            cudaDataType_t y_type, float beta);
  cudaStream_t stream_;
  GemmKernel kernel_;
  int num_sms_ = 0;
  cublasHandle_t handle_ = nullptr;
  losa::cuda::DeviceBuffer workspace_;
  losa::cuda::DeviceBuffer skinny_workspace_;
  SkinnyGemmWorkspace skinny_;
};

}  // namespace losa::runtime::cuda
