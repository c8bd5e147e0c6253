#pragma once
// A pair of CUDA events around enqueued work: device time, never host clocks (the benchmarks'
// medians and the GEMM tuner's candidates).
#include <cuda_runtime.h>

#include "check.hpp"

namespace losa::cuda {

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

}  // namespace losa::cuda
