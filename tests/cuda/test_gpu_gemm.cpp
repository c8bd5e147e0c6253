// The GEMM of the model's forward (src/runtime/cuda/gemm.hpp) on its tuned path: Gemm::tune
// times cuBLASLt's candidate algorithms for a shape and later calls run the one kept, eagerly
// and inside captured graphs. Every candidate the heuristic offers is checked against a
// double-precision reference (the tuner may keep any of them), for the three outputs, sizes
// that are not multiples of any tile, and a poisoned row past the output.
//
// Tolerance: tests/cuda/gemm_problem.hpp with `in` additions on a path: cuBLASLt's algorithms
// differ in their reduction order (split K, tile depth); a sequential sum is the worst case.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../../src/runtime/cuda/gemm.hpp"
#include "../../src/runtime/cuda/lt_matmul.hpp"
#include "cuda/gemm_problem.hpp"
#include "cuda/gpu_test_util.hpp"
#include "losa/errors.hpp"

namespace losa::runtime::cuda {
namespace {

using gemm_test::Output;
using gemm_test::make_problem;
using gemm_test::Problem;

struct Shape {
  int rows, out, in;
};
// The step shapes' kind (rows above the decode kernel's 16) and odd sizes.
const Shape kShapes[] = {{64, 384, 512}, {33, 200, 264}, {17, 1000, 1032}, {128, 96, 4096}};

std::string describe(const Shape& s, Output o) {
  return "rows " + std::to_string(s.rows) + " out " + std::to_string(s.out) + " in " + std::to_string(s.in) +
         " output " + std::to_string(static_cast<int>(o));
}

void call(Gemm& gemm, const Problem& p, gemm_test::OutputBuffer& y) {
  const auto* x = p.x_dev.as<__nv_bfloat16>();
  const auto* w = p.w_dev.as<__nv_bfloat16>();
  if (y.kind == Output::bf16) gemm.to_bf16(x, w, p.rows, p.out, p.in, y.y.as<__nv_bfloat16>());
  else gemm.to_f32(x, w, p.rows, p.out, p.in, y.y.as<float>(), y.kind == Output::f32_accumulate);
}

TEST(GpuGemm, EveryCublasLtCandidateMatchesDoubleReference) {
  LOSA_REQUIRE_GPU();
  cublasLtHandle_t lt;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  losa::cuda::DeviceBuffer workspace(size_t{32} << 20);
  uint64_t seed = 11;
  for (const Shape& s : kShapes) {
    const Problem p = make_problem(s.rows, s.out, s.in, seed++);
    for (Output o : {Output::bf16, Output::f32, Output::f32_accumulate}) {
      const LtMatmulShape shape(lt, s.rows, s.out, s.in, o == Output::bf16 ? CUDA_R_16BF : CUDA_R_32F,
                                workspace.bytes(), 16);
      ASSERT_GE(shape.num_candidates(), 1) << describe(s, o);
      for (int c = 0; c < shape.num_candidates(); ++c) {
        gemm_test::OutputBuffer y(p, o);
        if (shape.try_run(c, p.x_dev.as<__nv_bfloat16>(), p.w_dev.as<__nv_bfloat16>(), y.y.data(),
                          o == Output::f32_accumulate ? 1.0f : 0.0f, workspace.data(), workspace.bytes(),
                          nullptr) != CUBLAS_STATUS_SUCCESS)
          continue;  // refused at run time: the tuner never keeps such a candidate
        losa::cuda::synchronize(nullptr);
        gemm_test::check_output(p, y, s.in, describe(s, o) + " candidate " + std::to_string(c));
        if (HasFatalFailure()) return;
      }
    }
  }
  cublasLtDestroy(lt);
}

// tune() keeps a candidate; later calls of the shape run it, eagerly and replayed from a graph.
TEST(GpuGemm, TunedShapesComputeTheProductEagerlyAndInGraphs) {
  LOSA_REQUIRE_GPU();
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  {
    Gemm gemm(stream, GemmKernel::automatic);
    uint64_t seed = 21;
    for (const Shape& s : kShapes) {
      const Problem p = make_problem(s.rows, s.out, s.in, seed++);
      // A second copy of the weights: the tuner times over several matrices of the shape.
      losa::cuda::DeviceBuffer w2(p.w_dev.bytes());
      ASSERT_EQ(cudaMemcpy(w2.data(), p.w_dev.data(), w2.bytes(), cudaMemcpyDeviceToDevice), cudaSuccess);
      for (Output o : {Output::bf16, Output::f32, Output::f32_accumulate}) {
        const std::string where = describe(s, o);
        gemm_test::OutputBuffer y(p, o);
        const bool f32 = o != Output::bf16, accumulate = o == Output::f32_accumulate;
        ASSERT_FALSE(gemm.tuned(s.rows, s.out, s.in, f32, accumulate)) << where;
        const Gemm::TuneResult r = gemm.tune(p.x_dev.as<__nv_bfloat16>(), {p.w_dev.as<__nv_bfloat16>(), w2.as<__nv_bfloat16>()},
                                             s.rows, s.out, s.in, y.y.data(), f32, accumulate);
        ASSERT_GE(r.candidates, 1) << where;
        ASSERT_TRUE(r.chosen >= 0 && r.chosen < r.candidates) << where;
        EXPECT_GT(r.chosen_us, 0.0) << where;
        EXPECT_LE(r.chosen_us, r.first_us) << where << ": kept a slower candidate than the first";
        ASSERT_TRUE(gemm.tuned(s.rows, s.out, s.in, f32, accumulate)) << where;
        const Gemm::TuneResult again = gemm.tune(p.x_dev.as<__nv_bfloat16>(), {p.w_dev.as<__nv_bfloat16>()}, s.rows,
                                                 s.out, s.in, y.y.data(), f32, accumulate);
        EXPECT_EQ(again.chosen, r.chosen) << where << ": a tuned shape is not tuned again";

        y.reset();  // the tuning overwrote (or added onto) it
        call(gemm, p, y);
        losa::cuda::synchronize(stream);
        gemm_test::check_output(p, y, s.in, where + " eager");
        if (HasFatalFailure()) return;

        cudaGraph_t graph;
        cudaGraphExec_t exec;
        ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
        call(gemm, p, y);
        ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
        ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
        for (int replay = 0; replay < 2; ++replay) {
          y.reset();
          ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
          losa::cuda::synchronize(stream);
          gemm_test::check_output(p, y, s.in, where + " replay " + std::to_string(replay));
          if (HasFatalFailure()) return;
        }
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
      }
    }
  }
  cudaStreamDestroy(stream);
}

// Decode shapes belong to the decode-shape kernel, and a cuBLAS-only Gemm never tunes.
TEST(GpuGemm, LeavesDecodeShapesAndCublasOnlyInstancesUntuned) {
  LOSA_REQUIRE_GPU();
  const Problem p = make_problem(16, 256, 512, 31);
  losa::cuda::DeviceBuffer y(static_cast<size_t>(p.rows) * p.out * 4);
  Gemm automatic(nullptr, GemmKernel::automatic);
  ASSERT_TRUE(automatic.serves_with_decode_kernel(p.x_dev.data(), p.w_dev.data(), p.rows, p.in));
  EXPECT_EQ(automatic.tune(p.x_dev.as<__nv_bfloat16>(), {p.w_dev.as<__nv_bfloat16>()}, p.rows, p.out, p.in, y.data(),
                           true, false)
                .candidates,
            0);
  EXPECT_FALSE(automatic.tuned(p.rows, p.out, p.in, true, false));
  const Problem wide = make_problem(64, 256, 512, 32);
  Gemm cublas_only(nullptr, GemmKernel::cublas);
  losa::cuda::DeviceBuffer y2(static_cast<size_t>(wide.rows) * wide.out * 4);
  EXPECT_EQ(cublas_only.tune(wide.x_dev.as<__nv_bfloat16>(), {wide.w_dev.as<__nv_bfloat16>()}, wide.rows, wide.out,
                             wide.in, y2.data(), true, false)
                .candidates,
            0);
  EXPECT_FALSE(cublas_only.tuned(wide.rows, wide.out, wide.in, true, false));
}

TEST(GpuGemm, TuneRefusesBadArgumentsAndCaptureByName) {
  LOSA_REQUIRE_GPU();
  const Problem p = make_problem(64, 128, 256, 41);
  losa::cuda::DeviceBuffer y(static_cast<size_t>(p.rows) * p.out * 4);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  {
    Gemm gemm(stream, GemmKernel::automatic);
    const auto* x = p.x_dev.as<__nv_bfloat16>();
    const auto* w = p.w_dev.as<__nv_bfloat16>();
    auto refused = [&](const std::function<void()>& f, const char* name) {
      try {
        f();
      } catch (const ArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
        return;
      }
      ADD_FAILURE() << "accepted a bad " << name;
    };
    refused([&] { gemm.tune(x, {w}, 0, p.out, p.in, y.data(), true, false); }, "rows");
    refused([&] { gemm.tune(nullptr, {w}, p.rows, p.out, p.in, y.data(), true, false); }, "x");
    refused([&] { gemm.tune(x, {}, p.rows, p.out, p.in, y.data(), true, false); }, "weights");
    refused([&] { gemm.tune(x, {w, nullptr}, p.rows, p.out, p.in, y.data(), true, false); }, "weights");
    cudaGraph_t graph;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    refused([&] { gemm.tune(x, {w}, p.rows, p.out, p.in, y.data(), true, false); }, "stream");
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    cudaGraphDestroy(graph);
    EXPECT_FALSE(gemm.tuned(p.rows, p.out, p.in, true, false));
  }
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace losa::runtime::cuda
