// The decode-shape GEMM (src/runtime/cuda/skinny_gemm.hpp) against a double-precision reference
// over the same bf16 operands: every compiled instance, 1..16 rows, K splits
// automatic, none and forced, sizes that are not multiples of the tiles (out % 64, in % 32),
// the three outputs (bf16, fp32, fp32 added onto), a poisoned row past the output that must stay
// untouched, bitwise repeatability and graph replays (the split tickets reset themselves).
//
// Tolerance: products of bf16 operands are exact in fp32; the sums are fp32, so the error is
// bounded by ~u * (additions on a path) * sum |x_k w_k| with u = 2^-24 and at most in/16 + 16
// additions per path (mma steps, warps, splits); doubled for margin. A bf16 output adds half an
// ulp, up to 2^-8 |y| (8 significant bits); an accumulated output one fp32 rounding of the sum. A
// wrong k mapping or a lost chunk moves a result by ~sqrt(32) |x w|, hundreds of times the bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "../../src/runtime/cuda/skinny_gemm.hpp"
#include "cuda/gpu_test_util.hpp"
#include "cuda/pdl_producer.hpp"
#include "losa/errors.hpp"

namespace losa::runtime::cuda {
namespace {

enum class Output { bf16, f32, f32_accumulate };

struct Problem {
  int rows, out, in;
  std::vector<float> x, w;  // bf16-rounded values
  losa::cuda::DeviceBuffer x_dev, w_dev;
  std::vector<double> ref, mag;  // x . w^T and sum |x_k w_k| per output, in double
};

Problem make_problem(int rows, int out, int in, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows) * in), w(static_cast<size_t>(out) * in);
  for (auto& v : x) v = d(rng);
  for (auto& v : w) v = d(rng);
  Problem p{rows, out, in, {}, {}, losa::cuda::upload_as(DType::bf16, x), losa::cuda::upload_as(DType::bf16, w)};
  p.x = losa::cuda::download_as(DType::bf16, p.x_dev, x.size());
  p.w = losa::cuda::download_as(DType::bf16, p.w_dev, w.size());
  p.ref.assign(static_cast<size_t>(rows) * out, 0.0);
  p.mag.assign(p.ref.size(), 0.0);
  for (int r = 0; r < rows; ++r)
    for (int n = 0; n < out; ++n)
      for (int k = 0; k < in; ++k) {
        const double t =
            static_cast<double>(p.x[static_cast<size_t>(r) * in + k]) * p.w[static_cast<size_t>(n) * in + k];
        p.ref[static_cast<size_t>(r) * out + n] += t;
        p.mag[static_cast<size_t>(r) * out + n] += std::abs(t);
      }
  return p;
}

/// The bound on an fp32 sum's error from the header: 2 u (additions on a path) sum |x_k w_k|.
double sum_tolerance(const Problem& p, size_t at) {
  const double u = std::ldexp(1.0, -24), paths = p.in / 16.0 + 16.0;
  return 2.0 * u * paths * p.mag[at] + 1e-30;
}

/// The problem's operands into an fp32 (or bf16) output `y`.
SkinnyGemmArgs args_for(const Problem& p, void* y, bool y_f32) {
  SkinnyGemmArgs a;
  a.x = p.x_dev.as<__nv_bfloat16>();
  a.w = p.w_dev.as<__nv_bfloat16>();
  a.rows = p.rows;
  a.out = p.out;
  a.in = p.in;
  a.y = y;
  a.y_f32 = y_f32;
  return a;
}

struct Scratch {
  losa::cuda::DeviceBuffer partials{size_t{1} << 22}, tickets{4096 * sizeof(unsigned)};
  SkinnyGemmWorkspace ws() const {
    return {partials.as<float>(), partials.bytes() / sizeof(float), tickets.as<unsigned>(), 4096};
  }
  Scratch() { tickets.fill_bytes(0); }
};

int num_sms() { return losa::cuda::multiprocessor_count(); }

/// Runs one case and checks every element; the output buffer holds one extra, poisoned row.
void check_case(const Problem& p, int splits, const SkinnyGemmConfig& config, bool pdl, Output output,
                const std::string& where) {
  const size_t n_out = static_cast<size_t>(p.rows) * p.out, padded = n_out + p.out;
  const bool f32 = output != Output::bf16;
  std::vector<float> y0(padded, std::numeric_limits<float>::quiet_NaN());
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> d(-4.0f, 4.0f);
  if (output == Output::f32_accumulate)
    for (size_t i = 0; i < n_out; ++i) y0[i] = d(rng);
  losa::cuda::DeviceBuffer y(padded * (f32 ? 4 : 2));
  if (f32) {
    y.upload(y0.data(), padded * 4);
  } else {
    std::vector<uint16_t> nan_bf16(padded, 0x7fc0);
    y.upload(nan_bf16.data(), padded * 2);
  }
  Scratch scratch;
  SkinnyGemmArgs a = args_for(p, y.data(), f32);
  a.accumulate = output == Output::f32_accumulate;
  a.splits = splits;
  a.config = config;
  a.programmatic = pdl;
  launch_skinny_gemm(a, scratch.ws(), num_sms(), nullptr);
  losa::cuda::synchronize(nullptr);
  const std::vector<float> got = f32 ? [&] {
    std::vector<float> v(padded);
    y.download(v.data(), padded * 4);
    return v;
  }()
                                     : losa::cuda::download_as(DType::bf16, y, padded);
  double worst = 0.0;
  for (int r = 0; r < p.rows; ++r)
    for (int n = 0; n < p.out; ++n) {
      const size_t at = static_cast<size_t>(r) * p.out + n;
      double ref = p.ref[at], tol = sum_tolerance(p, at);
      if (output == Output::f32_accumulate) {
        ref += y0[at];
        tol += std::ldexp(std::abs(ref), -23);  // one fp32 rounding of y0 + sum, doubled
      }
      if (output == Output::bf16) tol += std::ldexp(std::abs(ref), -8);  // half an ulp: 8 significant bits
      const double err = std::abs(got[at] - ref);
      worst = test::worst(worst, err / tol);
      ASSERT_LE(err, tol) << where << " row " << r << " col " << n << ": got " << got[at] << " want " << ref;
    }
  for (int n = 0; n < p.out; ++n) ASSERT_TRUE(std::isnan(got[n_out + n])) << where << ": wrote past the last row";
  EXPECT_LE(worst, 1.0) << where;
}

// Every compiled instance (the default and the sweep's), K split automatic, none and forced.
TEST(GpuSkinnyGemm, MatchesDoubleReferenceForEveryInstanceSplitAndOutput) {
  LOSA_REQUIRE_GPU();
  struct Shape {
    int rows, out, in;
  };
  // 1..16 rows; out not a multiple of any column tile; in not a multiple of 32 or 64.
  const Shape shapes[] = {{1, 24, 8},    {4, 200, 264},  {16, 1000, 4096}, {13, 4104, 2568},
                          {16, 70, 776}, {8, 96, 12288}, {2, 9, 40}};
  uint64_t seed = 1;
  for (const Shape& s : shapes) {
    const Problem p = make_problem(s.rows, s.out, s.in, seed++);
    std::vector<SkinnyGemmConfig> configs = skinny_gemm_configs(s.rows);
    configs.insert(configs.begin(), SkinnyGemmConfig{});  // the automatic choice
    for (const SkinnyGemmConfig& config : configs)
      for (int splits : {0, 1, 3})
        for (Output o : {Output::bf16, Output::f32, Output::f32_accumulate})
          for (bool pdl : {true, false}) {
            const std::string where = "rows " + std::to_string(s.rows) + " out " + std::to_string(s.out) + " in " +
                                      std::to_string(s.in) + " nt " + std::to_string(config.nt) + " kp " +
                                      std::to_string(config.kp) + " warps " + std::to_string(config.warps) +
                                      " splits " + std::to_string(splits) + " output " +
                                      std::to_string(static_cast<int>(o)) + (pdl ? " pdl" : "");
            check_case(p, splits, config, pdl, o, where);
            if (HasFatalFailure()) return;
          }
  }
}

TEST(GpuSkinnyGemm, AutomaticSplitsSplitTheDecodeShapes) {
  LOSA_REQUIRE_GPU();
  Scratch scratch;
  SkinnyGemmArgs a;
  a.rows = 16;
  a.out = 4096;
  a.in = 4096;  // SDAR-8B's o projection: 256 column tiles of 16 rows for 132 SMs, no split
  EXPECT_EQ(skinny_gemm_splits(a, scratch.ws(), 132), 1);
  a.out = 1000;  // 63 tiles: half the SMs would idle
  EXPECT_GT(skinny_gemm_splits(a, scratch.ws(), 132), 1);
  EXPECT_EQ(skinny_gemm_splits(a, SkinnyGemmWorkspace{}, 132), 1) << "no workspace, no split";
}

// Same inputs, same bits: the split partials are added in a fixed order. A captured graph
// replays correctly, so the last CTA leaves its ticket at zero.
TEST(GpuSkinnyGemm, RepeatsBitwiseAndReplaysInAGraph) {
  LOSA_REQUIRE_GPU();
  const Problem p = make_problem(16, 1000, 4096, 99);
  Scratch scratch;
  losa::cuda::DeviceBuffer y(static_cast<size_t>(p.rows) * p.out * 4);
  const SkinnyGemmArgs a = args_for(p, y.data(), true);
  ASSERT_GT(skinny_gemm_splits(a, scratch.ws(), num_sms()), 1) << "the case must take the split path";
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  launch_skinny_gemm(a, scratch.ws(), num_sms(), stream);
  losa::cuda::synchronize(stream);
  std::vector<float> first(static_cast<size_t>(p.rows) * p.out), again(first.size());
  y.download(first.data(), first.size() * 4);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  launch_skinny_gemm(a, scratch.ws(), num_sms(), stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int replay = 0; replay < 3; ++replay) {
    y.fill_bytes(0xff);  // NaN: a replay that skipped the final sum would leave it
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    losa::cuda::synchronize(stream);
    y.download(again.data(), again.size() * 4);
    ASSERT_EQ(std::memcmp(first.data(), again.data(), first.size() * 4), 0) << "replay " << replay;
  }
  std::vector<unsigned> tickets(4096);
  scratch.tickets.download(tickets.data(), tickets.size() * sizeof(unsigned));
  for (unsigned t : tickets) ASSERT_EQ(t, 0u);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// PDL: the GEMM may start while the kernel before it still runs, and reads its weights then; it
// must read x only once that kernel is done. The kernel before writes x ~100 us late: a GEMM
// that read x early would multiply zeros.
TEST(GpuSkinnyGemm, ReadsItsInputOnlyAfterThePreviousKernel) {
  LOSA_REQUIRE_GPU();
  const Problem p = make_problem(16, 1000, 4096, 123);
  losa::cuda::DeviceBuffer x(p.x_dev.bytes()), y(static_cast<size_t>(p.rows) * p.out * 4);
  Scratch scratch;
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  for (int splits : {1, 0}) {  // one pass, and the split path (63 column tiles split)
    x.fill_bytes(0);
    y.fill_bytes(0xff);
    SkinnyGemmArgs a = args_for(p, y.data(), true);
    a.x = x.as<__nv_bfloat16>();
    a.splits = splits;
    a.programmatic = true;
    test::launch_late_copy(p.x_dev.data(), x.data(), x.bytes(), stream);
    launch_skinny_gemm(a, scratch.ws(), num_sms(), stream);
    losa::cuda::synchronize(stream);
    std::vector<float> got(static_cast<size_t>(p.rows) * p.out);
    y.download(got.data(), got.size() * 4);
    for (size_t at = 0; at < got.size(); ++at)
      ASSERT_LE(std::abs(got[at] - p.ref[at]), sum_tolerance(p, at)) << "splits " << splits << " output " << at;
  }
  cudaStreamDestroy(stream);
}

TEST(GpuSkinnyGemm, RefusesBadArgumentsByName) {
  LOSA_REQUIRE_GPU();
  const Problem p = make_problem(4, 64, 64, 5);
  Scratch scratch;
  losa::cuda::DeviceBuffer y(4 * 64 * 4);
  const SkinnyGemmArgs good = args_for(p, y.data(), true);
  auto refused = [&](SkinnyGemmArgs a, const char* name) {
    try {
      launch_skinny_gemm(a, scratch.ws(), num_sms(), nullptr);
    } catch (const ArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "accepted a bad " << name;
  };
  SkinnyGemmArgs a = good;
  a.rows = 0;
  refused(a, "rows");
  a.rows = 17;
  refused(a, "rows");
  a = good;
  a.in = 60;
  refused(a, "in");
  a = good;
  a.x = reinterpret_cast<const __nv_bfloat16*>(reinterpret_cast<const char*>(good.x) + 8);
  refused(a, "x");
  a = good;
  a.y_f32 = false;
  a.accumulate = true;
  refused(a, "accumulate");
  EXPECT_FALSE(skinny_gemm_applies(17, 64, good.x, good.w));
  EXPECT_FALSE(skinny_gemm_applies(4, 60, good.x, good.w));
  EXPECT_TRUE(skinny_gemm_applies(4, 64, good.x, good.w));
}

}  // namespace
}  // namespace losa::runtime::cuda
