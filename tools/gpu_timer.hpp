#pragma once
// Timing with CUDA events, for the benchmark: medians of many runs, never host clocks.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "../src/cuda/check.hpp"

namespace losa::tools {

class EventPair {
 public:
  EventPair() {
    LOSA_CUDA_CHECK(cudaEventCreate(&start_));
    LOSA_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventPair() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  void start(cudaStream_t s) { LOSA_CUDA_CHECK(cudaEventRecord(start_, s)); }
  void stop(cudaStream_t s) { LOSA_CUDA_CHECK(cudaEventRecord(stop_, s)); }
  /// Microseconds between the two events (they must have completed).
  double micros() const {
    float ms = 0.0f;
    LOSA_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return 1000.0 * ms;
  }

 private:
  cudaEvent_t start_{}, stop_{};
};

inline double median(std::vector<double> x) {
  if (x.empty()) return 0.0;
  std::sort(x.begin(), x.end());
  const size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

}  // namespace losa::tools
