#pragma once
// Shared test helpers: seeded random inputs, error norms, caches filled with random keys.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "losa/paged_kv.hpp"
#include "losa/shapes.hpp"

namespace losa::test {

/// Fresh non-zero normal values (never exactly zero, so unwritten outputs cannot hide).
inline std::vector<float> random_vector(size_t n, uint64_t seed, float stddev = 1.0f,
                                        float mean = 0.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> x(n);
  for (auto& v : x) {
    do v = dist(rng);
    while (v == 0.0f);
  }
  return x;
}

inline std::vector<float> rounded(std::vector<float> x, DType t) { return rounded_to(t, std::move(x)); }

/// ||x - ref|| / ||ref||; NaN anywhere gives +inf so that it never passes a bound.
inline double rel_l2(const float* x, const float* ref, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(x[i]) || std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(x[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}
inline double rel_l2(const std::vector<float>& x, const std::vector<float>& ref) {
  return rel_l2(x.data(), ref.data(), ref.size());
}

/// A sentinel written into outputs before a run, so that unwritten elements are caught.
inline constexpr float kPoison = std::numeric_limits<float>::quiet_NaN();

/// A cache with one sequence of `kv_len` random tokens (appended in uneven chunks, so that
/// appends cross page boundaries), pages in permuted physical order. Returns the raw keys and
/// values as appended (rounded to the storage dtype), [kv_len, Hk, D] each.
struct RandomCache {
  PagedKVCache cache;
  std::vector<float> keys, values;
};

inline RandomCache make_random_cache(int kv_len, int num_kv_heads, int head_dim, int page_size,
                                     DType dtype, uint64_t seed, float key_mean_spread = 1.0f,
                                     bool keep_bounds8 = false) {
  PagedKVConfig c;
  c.keep_bounds8 = keep_bounds8;
  c.num_kv_heads = num_kv_heads;
  c.head_dim = head_dim;
  c.page_size = page_size;
  c.max_pages = kv_len / page_size + 3;
  c.dtype = dtype;
  c.page_order_seed = seed + 17;
  RandomCache rc{PagedKVCache(c), {}, {}};
  const size_t row = static_cast<size_t>(num_kv_heads) * head_dim;
  // Keys get a per-token offset so that pages differ in their bounds, as real keys do.
  rc.keys = random_vector(static_cast<size_t>(kv_len) * row, seed);
  const std::vector<float> offsets = random_vector(static_cast<size_t>(kv_len), seed + 1, key_mean_spread);
  for (int t = 0; t < kv_len; ++t)
    for (size_t e = 0; e < row; ++e) rc.keys[t * row + e] += offsets[t] * ((e % 3) ? 1.0f : -1.0f);
  rc.values = random_vector(static_cast<size_t>(kv_len) * row, seed + 2);
  rc.keys = rounded(rc.keys, dtype);
  rc.values = rounded(rc.values, dtype);
  const int seq = rc.cache.add_sequence();
  int done = 0, chunk = 1;
  while (done < kv_len) {  // chunks 1, 6, 11, ...: every page offset gets crossed
    const int n = std::min(chunk, kv_len - done);
    rc.cache.append(seq, &rc.keys[done * row], &rc.values[done * row], n);
    done += n;
    chunk += 5;
  }
  return rc;
}

}  // namespace losa::test
