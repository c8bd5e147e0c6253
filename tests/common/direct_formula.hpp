#pragma once
// Direct formulas, written from the definitions over the raw token arrays a test appended (not
// through the cache), so that the reference and the code under test share nothing but the math.
#include <cmath>
#include <limits>
#include <vector>

namespace losa::test {

/// Softmax attention of one query row over the tokens of the listed logical pages.
/// keys/values: [kv_len, Hk, D]. Returns o in `o` and the natural-log lse.
inline double direct_attention(const std::vector<float>& keys, const std::vector<float>& values,
                               int kv_len, int Hk, int D, int page_size, const float* q, int kvh,
                               const std::vector<int>& pages, double scale, std::vector<double>& o) {
  std::vector<int> toks;
  for (int p : pages)
    for (int t = p * page_size; t < std::min(kv_len, (p + 1) * page_size); ++t) toks.push_back(t);
  o.assign(D, 0.0);
  if (toks.empty()) return -std::numeric_limits<double>::infinity();
  std::vector<double> s;
  double m = -std::numeric_limits<double>::infinity();
  for (int t : toks) {
    double dot = 0.0;
    for (int d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * keys[(static_cast<size_t>(t) * Hk + kvh) * D + d];
    s.push_back(dot * scale);
    m = std::max(m, s.back());
  }
  double sum = 0.0;
  for (size_t j = 0; j < toks.size(); ++j) {
    const double w = std::exp(s[j] - m);
    sum += w;
    for (int d = 0; d < D; ++d) o[d] += w * values[(static_cast<size_t>(toks[j]) * Hk + kvh) * D + d];
  }
  for (int d = 0; d < D; ++d) o[d] /= sum;
  return m + std::log(sum);
}

}  // namespace losa::test
