#include "gemm.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

#include "../../cuda/check.hpp"
#include "losa/cuda/device.hpp"
#include "losa/errors.hpp"

namespace losa::runtime::cuda {
namespace {
void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw BackendError(std::string(what) + " failed: cuBLAS status " + std::to_string(static_cast<int>(status)));
}
constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper
// Split-K partials of the decode-shape kernel (splits only for shapes too narrow for the SMs).
constexpr size_t kSkinnyPartialFloats = size_t{2} << 20;
constexpr int kSkinnyTickets = 8192;  // column tiles: out <= 8192 x 32
}  // namespace

GemmKernel Gemm::kernel_from_environment() {
  const char* env = std::getenv("LOSA_GEMM");
  return env && std::strcmp(env, "cublas") == 0 ? GemmKernel::cublas : GemmKernel::automatic;
}

Gemm::Gemm(cudaStream_t stream, GemmKernel kernel)
    : stream_(stream),
      kernel_(kernel),
      num_sms_(losa::cuda::multiprocessor_count()),
      workspace_(kWorkspaceBytes),
      skinny_workspace_(kSkinnyPartialFloats * sizeof(float) + kSkinnyTickets * sizeof(unsigned)) {
  skinny_.partials = skinny_workspace_.as<float>();
  skinny_.partial_floats = kSkinnyPartialFloats;
  skinny_.tickets = reinterpret_cast<unsigned*>(skinny_.partials + kSkinnyPartialFloats);
  skinny_.num_tickets = kSkinnyTickets;
  LOSA_CUDA_CHECK(cudaMemsetAsync(skinny_.tickets, 0, kSkinnyTickets * sizeof(unsigned), stream));
  check(cublasCreate(&handle_), "cublasCreate");
  check(cublasSetStream(handle_, stream), "cublasSetStream");
  check(cublasSetWorkspace(handle_, workspace_.data(), workspace_.bytes()), "cublasSetWorkspace");
  check(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

Gemm::~Gemm() {
  if (handle_) cublasDestroy(handle_);
}

void Gemm::gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t rows, int64_t out, int64_t in, void* y,
                cudaDataType_t y_type, float beta) {
  if (rows == 0) return;
  LOSA_CHECK_ARG(rows <= INT32_MAX && out <= INT32_MAX && in <= INT32_MAX, "rows/out/in", "exceed cuBLAS's 32-bit sizes");
  if (serves_with_decode_kernel(x, w, rows, in)) {
    SkinnyGemmArgs a;
    a.x = x;
    a.w = w;
    a.rows = static_cast<int>(rows);
    a.out = static_cast<int>(out);
    a.in = static_cast<int>(in);
    a.y = y;
    a.y_f32 = y_type == CUDA_R_32F;
    a.accumulate = beta != 0.0f;
    launch_skinny_gemm(a, skinny_, num_sms_, stream_);
    return;
  }
  const float alpha = 1.0f;
  // Column-major view: y^T [out, rows] = W [out, in] (W^T stored with ld = in, transposed) . x^T.
  check(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(rows),
                     static_cast<int>(in), &alpha, w, CUDA_R_16BF, static_cast<int>(in), x, CUDA_R_16BF,
                     static_cast<int>(in), &beta, y, y_type, static_cast<int>(out), CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

bool Gemm::serves_with_decode_kernel(const void* x, const void* w, int64_t rows, int64_t in) const {
  return kernel_ == GemmKernel::automatic && rows <= kSkinnyMaxRows && in <= INT32_MAX &&  // before the casts
         skinny_gemm_applies(static_cast<int>(rows), static_cast<int>(in), x, w);
}

void Gemm::to_bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t rows, int64_t out, int64_t in,
                   __nv_bfloat16* y) {
  gemm(x, w, rows, out, in, y, CUDA_R_16BF, 0.0f);
}

void Gemm::to_f32(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t rows, int64_t out, int64_t in, float* y,
                  bool accumulate) {
  gemm(x, w, rows, out, in, y, CUDA_R_32F, accumulate ? 1.0f : 0.0f);
}

}  // namespace losa::runtime::cuda
