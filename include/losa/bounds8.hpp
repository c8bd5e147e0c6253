#pragma once
// The 8-bit conservative page bounds of DESIGN.md section 2, shared by the CPU cache and the CUDA
// kernels so that both store the same bytes. Per page and KV head one scale s (the largest
// |bound| over the head dim, divided by 127, rounded so that 127 s covers it); the minimum is
// stored rounded down and the maximum rounded up, in units of s: q_min s <= min and
// q_max s >= max, so QUEST's score over the stored bounds stays an upper bound of the true one.
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define LOSA_HOST_DEVICE __host__ __device__
#else
#define LOSA_HOST_DEVICE
#endif

namespace losa {

/// Scale of a page's 8-bit bounds from the largest |bound| of the page (1 for an all-zero page).
LOSA_HOST_DEVICE inline float bound8_scale(float max_abs_bound) {
  if (!(max_abs_bound > 0.0f)) return 1.0f;
  float scale = max_abs_bound / 127.0f;
  if (127.0 * scale < max_abs_bound) scale = nextafterf(scale, INFINITY);
  return scale;
}

// The products q * scale are compared exactly: in double, a 7-bit integer times a float is exact.

/// The largest q with q * scale <= x (exactly), clamped to [-127, 127].
LOSA_HOST_DEVICE inline int8_t bound8_down(float x, float scale) {
  double q = floor(static_cast<double>(x) / scale);
  if (q * scale > x) q -= 1.0;
  else if ((q + 1.0) * scale <= x) q += 1.0;
  return static_cast<int8_t>(fmin(fmax(q, -127.0), 127.0));
}

/// The smallest q with q * scale >= x (exactly), clamped to [-127, 127].
LOSA_HOST_DEVICE inline int8_t bound8_up(float x, float scale) {
  double q = ceil(static_cast<double>(x) / scale);
  if (q * scale < x) q += 1.0;
  else if ((q - 1.0) * scale >= x) q -= 1.0;
  return static_cast<int8_t>(fmin(fmax(q, -127.0), 127.0));
}

}  // namespace losa
