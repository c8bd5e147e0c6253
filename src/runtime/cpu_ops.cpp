// Linear layers, RMSNorm, SwiGLU and embeddings on the CPU, double accumulation.
#include "cpu_ops.hpp"

#include <cmath>
#include <vector>

#include "losa/errors.hpp"
#include "parallel.hpp"

namespace losa::runtime::detail {

void linear(const float* x, int64_t rows, const TensorView& w, float* y, int threads) {
  const int64_t out = w.rows(), in = w.cols();
  parallel_for(out, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(in));
    for (int64_t o = begin; o < end; ++o) {
      w.row_to_float(o, row.data());  // decode once, use for every input row
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * in;
        double acc = 0.0;
        for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(xr[i]) * row[i];
        y[r * out + o] = static_cast<float>(acc);
      }
    }
  });
}

void rms_norm(const float* x, int64_t rows, int64_t dim, const TensorView& weight, double eps,
              float* y) {
  LOSA_CHECK_ARG(weight.numel() == dim, "weight", weight.name, " has ", weight.numel(),
                 " elements, want ", dim);
  std::vector<float> w(static_cast<size_t>(dim));
  weight.row_to_float(0, w.data());
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += static_cast<double>(xr[i]) * xr[i];
    const double inv_rms = 1.0 / std::sqrt(sum_sq / dim + eps);
    float* yr = y + r * dim;
    for (int64_t i = 0; i < dim; ++i) yr[i] = static_cast<float>(xr[i] * inv_rms * w[i]);
  }
}

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    gate[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void embed(const TensorView& table, const int32_t* tokens, int64_t rows, float* x) {
  for (int64_t r = 0; r < rows; ++r) {
    LOSA_CHECK_ARG(tokens[r] >= 0 && tokens[r] < table.rows(), "tokens", "token id ", tokens[r],
                   " at row ", r, " is outside the vocabulary [0, ", table.rows(), ")");
    table.row_to_float(tokens[r], x + r * table.cols());
  }
}

void add_in_place(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace losa::runtime::detail
