#pragma once
// Helpers of the GPU tests: the skip guard, device copies of test caches, and the selection
// validity rule of DESIGN.md section 5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/test_util.hpp"
#include "losa/cuda/device.hpp"
#include "losa/cuda/device_buffer.hpp"
#include "losa/cuda/device_kv.hpp"

/// Skips the test visibly ("[  SKIPPED ]", which CTest reports as skipped) without a GPU.
#define LOSA_REQUIRE_GPU()                                                        \
  do {                                                                            \
    if (::losa::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device here"; \
  } while (0)

namespace losa::test {

/// The chosen set is a valid top-k of `scores` over candidates 0..n-1 within `tol`: every
/// chosen score >= every unchosen score - tol, and it has min(k, n) members.
inline ::testing::AssertionResult valid_top_k(const double* scores, int n, int k,
                                              const std::vector<int>& chosen, double tol) {
  if (static_cast<int>(chosen.size()) != std::min(k, n))
    return ::testing::AssertionFailure() << "chose " << chosen.size() << " of " << n << ", want " << std::min(k, n);
  std::vector<bool> in(n, false);
  double min_chosen = INFINITY;
  for (int c : chosen) {
    if (c < 0 || c >= n) return ::testing::AssertionFailure() << "index " << c << " out of range";
    in[c] = true;
    min_chosen = std::min(min_chosen, scores[c]);
  }
  for (int i = 0; i < n; ++i)
    if (!in[i] && scores[i] > min_chosen + tol)
      return ::testing::AssertionFailure() << "unchosen " << i << " scores " << scores[i]
                                           << " > chosen minimum " << min_chosen << " + " << tol;
  return ::testing::AssertionSuccess();
}

/// Maximum |x| of a range, for tolerances relative to a row's scale.
inline double max_abs(const double* x, int n) {
  double m = 0.0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::abs(x[i]));
  return m;
}

}  // namespace losa::test
