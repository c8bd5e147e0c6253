#pragma once
// A GEMM test problem shared by the decode-shape kernel's tests and the tuned cuBLASLt path's:
// random bf16 operands, the product and sum |x_k w_k| in double, an output buffer with one
// poisoned row past its end, and the element-wise check against a bound on fp32 summation.
//
// Tolerance: products of bf16 operands are exact in fp32; the sums are fp32, so the error is
// bounded by ~u * (additions on a path) * sum |x_k w_k| with u = 2^-24, doubled for margin; the
// additions on a path depend on the kernel (its caller says). A bf16 output adds half an ulp, up
// to 2^-8 |y| (8 significant bits); an accumulated output one fp32 rounding of the sum. A wrong
// k mapping or a lost chunk moves a result by ~sqrt(32) |x w|, hundreds of times the bound.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda/gpu_test_util.hpp"
#include "losa/cuda/device_buffer.hpp"

namespace losa::runtime::cuda::gemm_test {

enum class Output { bf16, f32, f32_accumulate };

struct Problem {
  int rows, out, in;
  std::vector<float> x, w;  // bf16-rounded values
  losa::cuda::DeviceBuffer x_dev, w_dev;
  std::vector<double> ref, mag;  // x . w^T and sum |x_k w_k| per output, in double
};

inline Problem make_problem(int rows, int out, int in, uint64_t seed) {
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

/// 2 u (additions on a path) sum |x_k w_k|.
inline double sum_tolerance(const Problem& p, size_t at, double additions) {
  return 2.0 * std::ldexp(1.0, -24) * additions * p.mag[at] + 1e-30;
}

/// The output of a problem: rows x out elements and one poisoned (NaN) row past them; for an
/// accumulating output, random starting values y0.
struct OutputBuffer {
  Output kind;
  size_t n_out, padded;
  std::vector<float> y0;
  losa::cuda::DeviceBuffer y;

  OutputBuffer(const Problem& p, Output output)
      : kind(output),
        n_out(static_cast<size_t>(p.rows) * p.out),
        padded(n_out + p.out),
        y0(padded, std::numeric_limits<float>::quiet_NaN()),
        y(padded * (output == Output::bf16 ? 2 : 4)) {
    reset();
  }
  bool f32() const { return kind != Output::bf16; }
  void reset() {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> d(-4.0f, 4.0f);
    if (kind == Output::f32_accumulate)
      for (size_t i = 0; i < n_out; ++i) y0[i] = d(rng);
    if (f32()) {
      y.upload(y0.data(), padded * 4);
    } else {
      std::vector<uint16_t> nan_bf16(padded, 0x7fc0);
      y.upload(nan_bf16.data(), padded * 2);
    }
  }
  std::vector<float> download() const {
    if (!f32()) return losa::cuda::download_as(DType::bf16, y, padded);
    std::vector<float> v(padded);
    y.download(v.data(), padded * 4);
    return v;
  }
};

/// Every element against the reference (at most `additions` fp32 additions on a path), and the
/// poisoned row untouched.
inline void check_output(const Problem& p, const OutputBuffer& out, double additions, const std::string& where) {
  const std::vector<float> got = out.download();
  double worst = 0.0;
  for (int r = 0; r < p.rows; ++r)
    for (int n = 0; n < p.out; ++n) {
      const size_t at = static_cast<size_t>(r) * p.out + n;
      double ref = p.ref[at], tol = sum_tolerance(p, at, additions);
      if (out.kind == Output::f32_accumulate) {
        ref += out.y0[at];
        tol += std::ldexp(std::abs(ref), -23);  // one fp32 rounding of y0 + sum, doubled
      }
      if (out.kind == Output::bf16) tol += std::ldexp(std::abs(ref), -8);  // half an ulp: 8 significant bits
      const double err = std::abs(got[at] - ref);
      worst = losa::test::worst(worst, err / tol);
      ASSERT_LE(err, tol) << where << " row " << r << " col " << n << ": got " << got[at] << " want " << ref;
    }
  for (int n = 0; n < p.out; ++n)
    ASSERT_TRUE(std::isnan(got[out.n_out + n])) << where << ": wrote past the last row";
  EXPECT_LE(worst, 1.0) << where;
}

}  // namespace losa::runtime::cuda::gemm_test
