#pragma once
// One GEMM shape through cuBLASLt: y [rows, out] = x [rows, in] . w [out, in]^T (+ beta y), bf16
// operands, fp32 accumulation, a bf16 or fp32 output. It holds the shape's descriptors and the
// candidate algorithms cuBLASLt's heuristic offers for them, so that a caller can time the
// candidates once (Gemm::tune) and run the fastest ever after, captured graphs included.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace losa::runtime::cuda {

class LtMatmulShape {
 public:
  /// Asks the heuristic for at most `max_candidates` algorithms that fit `workspace_bytes`, in its
  /// order of preference (candidate 0 is its first choice). Throws BackendError if it offers none.
  LtMatmulShape(cublasLtHandle_t lt, int64_t rows, int64_t out, int64_t in, cudaDataType_t y_type,
                size_t workspace_bytes, int max_candidates);
  ~LtMatmulShape();
  LtMatmulShape(const LtMatmulShape&) = delete;
  LtMatmulShape& operator=(const LtMatmulShape&) = delete;

  int num_candidates() const { return static_cast<int>(candidates_.size()); }
  /// Enqueues the product with candidate `candidate` (0 <= candidate < num_candidates()).
  void run(int candidate, const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, float beta, void* workspace,
           size_t workspace_bytes, cudaStream_t stream) const;
  /// The same, returning cuBLASLt's status instead of throwing: a candidate may refuse operands
  /// its heuristic accepted (the tuner skips it).
  cublasStatus_t try_run(int candidate, const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, float beta, void* workspace,
           size_t workspace_bytes, cudaStream_t stream) const;

 private:
  cublasLtHandle_t lt_;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t w_layout_ = nullptr, x_layout_ = nullptr, y_layout_ = nullptr;
  std::vector<cublasLtMatmulHeuristicResult_t> candidates_;
};

}  // namespace losa::runtime::cuda
