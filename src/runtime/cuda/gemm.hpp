#pragma once
// The GEMMs of the forward: bf16 operands, fp32 accumulation. Activations are row-major
// [rows, in]; weights are PyTorch's Linear layout [out, in], so y = x W^T. The output is bf16,
// or fp32 added onto (the residual stream: y += x W^T). Decode shapes (<= 16 rows) go to the
// weight-streaming kernel (skinny_gemm.hpp); a shape tuned beforehand (tune(): the model's
// denoising-step shapes) to the cuBLASLt algorithm that timed fastest; everything else to cuBLAS.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "losa/cuda/device_buffer.hpp"
#include "lt_matmul.hpp"
#include "skinny_gemm.hpp"

namespace losa::runtime::cuda {

/// Which kernel serves a call: the decode-shape kernel where it applies and tuned cuBLASLt
/// algorithms where tuned (automatic), or always cuBLAS's own choice (the benchmark's comparison;
/// LOSA_GEMM=cublas sets it for a whole run).
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

  /// What tune() found: cuBLASLt's candidates (0: not tuned), the one kept and the times per call
  /// of it and of the heuristic's first choice.
  struct TuneResult {
    int candidates = 0, chosen = 0;
    double chosen_us = 0.0, first_us = 0.0;
  };
  /// Times cuBLASLt's candidate algorithms for y [rows, out] = x . w^T (+ y when `accumulate`)
  /// and keeps the fastest for every later call of that shape, captured graphs included. The
  /// timing runs over `weights` (matrices of one shape, such as every layer's, more bytes than
  /// the L2 holds, so that it streams them as a forward does); `y` is scratch (overwritten).
  /// The heuristic's first choice stays unless another is more than 3% faster, so that a rerun
  /// keeps the same algorithm (the same rounding) where timings are close. Not while the stream
  /// captures. Shapes the decode-shape kernel serves and a GemmKernel::cublas instance are not
  /// tuned (candidates = 0); a shape tuned before returns its earlier result.
  TuneResult tune(const __nv_bfloat16* x, const std::vector<const __nv_bfloat16*>& weights, int64_t rows, int64_t out,
                  int64_t in, void* y, bool y_f32, bool accumulate);
  /// True when calls of this shape run a tuned cuBLASLt algorithm.
  bool tuned(int64_t rows, int64_t out, int64_t in, bool y_f32, bool accumulate) const;

 private:
  using ShapeKey = std::tuple<int64_t, int64_t, int64_t, bool, bool>;  // rows, out, in, fp32 out, accumulate
  struct Tuned {
    std::unique_ptr<LtMatmulShape> shape;
    TuneResult result;
  };
  void gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t rows, int64_t out, int64_t in, void* y,
            cudaDataType_t y_type, float beta);
  cudaStream_t stream_;
  GemmKernel kernel_;
  int num_sms_ = 0;
  cublasHandle_t handle_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  std::map<ShapeKey, Tuned> tuned_;
  losa::cuda::DeviceBuffer workspace_;  // cuBLAS's and cuBLASLt's (one stream: never both at once)
  losa::cuda::DeviceBuffer skinny_workspace_;
  SkinnyGemmWorkspace skinny_;
};

}  // namespace losa::runtime::cuda
