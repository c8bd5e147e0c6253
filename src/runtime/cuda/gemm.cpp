#include "gemm.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "../../cuda/check.hpp"
#include "../../cuda/event_pair.hpp"
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
constexpr int kTuneCandidates = 16;   // cuBLASLt's heuristic order; rarely more than ~10 offered
constexpr int kTunePasses = 3;        // timed passes over the weights per candidate, after one warm-up
constexpr double kTuneMargin = 0.97;  // another candidate replaces the first only when this much faster
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
  check(cublasLtCreate(&lt_), "cublasLtCreate");
}

Gemm::~Gemm() {
  tuned_.clear();  // the shapes' descriptors before their handle
  if (lt_) cublasLtDestroy(lt_);
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
  if (kernel_ == GemmKernel::automatic) {
    const auto it = tuned_.find(ShapeKey{rows, out, in, y_type == CUDA_R_32F, beta != 0.0f});
    if (it != tuned_.end()) {
      it->second.shape->run(it->second.result.chosen, x, w, y, beta, workspace_.data(), workspace_.bytes(), stream_);
      return;
    }
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

Gemm::TuneResult Gemm::tune(const __nv_bfloat16* x, const std::vector<const __nv_bfloat16*>& weights, int64_t rows,
                            int64_t out, int64_t in, void* y, bool y_f32, bool accumulate) {
  LOSA_CHECK_ARG(rows >= 1 && out >= 1 && in >= 1, "rows/out/in", "must be >= 1, got ", rows, " x ", out, " x ", in);
  LOSA_CHECK_ARG(rows <= INT32_MAX && out <= INT32_MAX && in <= INT32_MAX, "rows/out/in", "exceed cuBLAS's 32-bit sizes");
  LOSA_CHECK_ARG(x != nullptr && y != nullptr, "x/y", "must not be null");
  LOSA_CHECK_ARG(!weights.empty(), "weights", "must hold at least one matrix");
  for (const __nv_bfloat16* w : weights) LOSA_CHECK_ARG(w != nullptr, "weights", "must not hold a null pointer");
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  LOSA_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  LOSA_CHECK_ARG(capturing == cudaStreamCaptureStatusNone, "stream", "is capturing a graph: tune before capture");
  if (kernel_ != GemmKernel::automatic || serves_with_decode_kernel(x, weights.front(), rows, in)) return {};
  const ShapeKey key{rows, out, in, y_f32, accumulate};
  if (const auto it = tuned_.find(key); it != tuned_.end()) return it->second.result;

  auto shape = std::make_unique<LtMatmulShape>(lt_, rows, out, in, y_f32 ? CUDA_R_32F : CUDA_R_16BF,
                                               workspace_.bytes(), kTuneCandidates);
  const float beta = accumulate ? 1.0f : 0.0f;
  losa::cuda::EventPair events;
  std::vector<double> us(static_cast<size_t>(shape->num_candidates()), std::numeric_limits<double>::infinity());
  for (int c = 0; c < shape->num_candidates(); ++c) {
    bool ran = true;
    for (int pass = 0; pass <= kTunePasses && ran; ++pass) {
      events.start(stream_);
      for (const __nv_bfloat16* w : weights)
        ran = ran && shape->try_run(c, x, w, y, beta, workspace_.data(), workspace_.bytes(), stream_) ==
                         CUBLAS_STATUS_SUCCESS;
      events.stop(stream_);
      LOSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (ran && pass > 0) us[c] = std::min(us[c], events.micros() / static_cast<double>(weights.size()));
    }
    if (!ran) us[c] = std::numeric_limits<double>::infinity();  // refused these operands: never chosen
  }
  const int fastest = static_cast<int>(std::min_element(us.begin(), us.end()) - us.begin());
  TuneResult r;
  r.candidates = shape->num_candidates();
  r.first_us = us[0];
  r.chosen = us[fastest] < kTuneMargin * us[0] ? fastest : 0;
  r.chosen_us = us[r.chosen];
  LOSA_CHECK_ARG(r.chosen_us < std::numeric_limits<double>::infinity(), "rows/out/in",
                 "no cuBLASLt algorithm ran for a ", rows, " x ", out, " x ", in, " GEMM");
  tuned_.emplace(key, Tuned{std::move(shape), r});
  return r;
}

bool Gemm::tuned(int64_t rows, int64_t out, int64_t in, bool y_f32, bool accumulate) const {
  return tuned_.count(ShapeKey{rows, out, in, y_f32, accumulate}) != 0;
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
