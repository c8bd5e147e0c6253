#pragma once
// Helpers of the GPU tests: the skip guard, the compute capability, device copies of test caches,
// and the selection validity rule of DESIGN.md section 5.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "common/test_util.hpp"
#include "losa/cuda/device.hpp"
#include "losa/cuda/device_buffer.hpp"
#include "losa/cuda/device_kv.hpp"
#include "losa/cuda/engine.hpp"

/// Skips the test visibly ("[  SKIPPED ]", which CTest reports as skipped) without a GPU.
#define LOSA_REQUIRE_GPU()                                                        \
  do {                                                                            \
    if (::losa::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device here"; \
  } while (0)

namespace losa::test {

/// The current device's compute capability as 10 * major + minor (90 for sm_90).
inline int compute_capability() {
  int device = 0, major = 0, minor = 0;
  EXPECT_EQ(cudaGetDevice(&device), cudaSuccess);
  EXPECT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), cudaSuccess);
  EXPECT_EQ(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), cudaSuccess);
  return 10 * major + minor;
}

/// Calls set(value) now and set(0) when the scope ends, also when a check throws: for the
/// kernels' test hooks that force one instance (0 restores the automatic choice), so that a
/// failing test does not leave the next one forced.
class ScopedForce {
 public:
  ScopedForce(void (*set)(int), int value) : set_(set) { set_(value); }
  ~ScopedForce() { set_(0); }
  ScopedForce(const ScopedForce&) = delete;
  ScopedForce& operator=(const ScopedForce&) = delete;

 private:
  void (*set_)(int);
};

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

/// True when the k-th largest of scores[0..n) exceeds the (k+1)-th by more than `tol`: any
/// implementation correct within `tol` must then choose exactly the same set.
inline bool well_separated_top_k(const double* scores, int n, int k, double tol) {
  if (k >= n || k <= 0) return true;
  std::vector<double> sorted(scores, scores + n);
  std::nth_element(sorted.begin(), sorted.begin() + k, sorted.end(), std::greater<double>());
  const double next = sorted[k];
  const double kth = *std::min_element(sorted.begin(), sorted.begin() + k);
  return kth - next > 2 * tol;
}

/// The larger of two errors, NaN winning (std::max would drop a NaN in its second argument).
inline double worst(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  return std::max(a, b);
}

/// Maximum |x| of a range, for tolerances relative to a row's scale.
inline double max_abs(const double* x, int n) {
  double m = 0.0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::abs(x[i]));
  return m;
}

}  // namespace losa::test
