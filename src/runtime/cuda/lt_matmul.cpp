#include "lt_matmul.hpp"

#include <string>

#include "losa/errors.hpp"

namespace losa::runtime::cuda {
namespace {
void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw BackendError(std::string(what) + " failed: cuBLAS status " + std::to_string(static_cast<int>(status)));
}
}  // namespace

LtMatmulShape::LtMatmulShape(cublasLtHandle_t lt, int64_t rows, int64_t out, int64_t in, cudaDataType_t y_type,
                             size_t workspace_bytes, int max_candidates)
    : lt_(lt) {
  // Column-major view, as Gemm's cublasGemmEx call: y^T [out, rows] = op(W) [out, in] . x^T [in, rows],
  // W stored [in, out] (ld = in) and transposed.
  check(cublasLtMatmulDescCreate(&op_, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose),
        "cublasLtMatmulDescSetAttribute(TRANSA)");
  check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep),
        "cublasLtMatmulDescSetAttribute(TRANSB)");
  check(cublasLtMatrixLayoutCreate(&w_layout_, CUDA_R_16BF, in, out, in), "cublasLtMatrixLayoutCreate(w)");
  check(cublasLtMatrixLayoutCreate(&x_layout_, CUDA_R_16BF, in, rows, in), "cublasLtMatrixLayoutCreate(x)");
  check(cublasLtMatrixLayoutCreate(&y_layout_, y_type, out, rows, out), "cublasLtMatrixLayoutCreate(y)");
  cublasLtMatmulPreference_t pref = nullptr;
  check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                             sizeof workspace_bytes),
        "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
  candidates_.resize(static_cast<size_t>(max_candidates));
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(lt_, op_, w_layout_, x_layout_, y_layout_, y_layout_,
                                                               pref, max_candidates, candidates_.data(), &found);
  cublasLtMatmulPreferenceDestroy(pref);
  check(status, "cublasLtMatmulAlgoGetHeuristic");
  candidates_.resize(static_cast<size_t>(found));
  if (candidates_.empty())
    throw BackendError("cuBLASLt offers no algorithm for a " + std::to_string(rows) + " x " + std::to_string(out) +
                       " x " + std::to_string(in) + " bf16 GEMM");
}

LtMatmulShape::~LtMatmulShape() {
  if (y_layout_) cublasLtMatrixLayoutDestroy(y_layout_);
  if (x_layout_) cublasLtMatrixLayoutDestroy(x_layout_);
  if (w_layout_) cublasLtMatrixLayoutDestroy(w_layout_);
  if (op_) cublasLtMatmulDescDestroy(op_);
}

cublasStatus_t LtMatmulShape::try_run(int candidate, const __nv_bfloat16* x, const __nv_bfloat16* w, void* y,
                                      float beta, void* workspace, size_t workspace_bytes, cudaStream_t stream) const {
  LOSA_CHECK_ARG(candidate >= 0 && candidate < num_candidates(), "candidate", "must be in [0, ", num_candidates(),
                 "), got ", candidate);
  const float alpha = 1.0f;
  return cublasLtMatmul(lt_, op_, &alpha, w, w_layout_, x, x_layout_, &beta, y, y_layout_, y, y_layout_,
                        &candidates_[static_cast<size_t>(candidate)].algo, workspace, workspace_bytes, stream);
}

void LtMatmulShape::run(int candidate, const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, float beta,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream) const {
  check(try_run(candidate, x, w, y, beta, workspace, workspace_bytes, stream), "cublasLtMatmul");
}

}  // namespace losa::runtime::cuda
