#pragma once
// Timing with CUDA events, for the benchmark: medians of many runs, never host clocks.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "../src/cuda/check.hpp"
#include "losa/cuda/device_buffer.hpp"

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

/// Device-to-device copy bandwidth of 1 GiB, bytes read plus written per second (GB/s): the
/// ceiling the benchmarks state their bandwidth against.
inline double copy_bandwidth_gbps(cudaStream_t stream) {
  const size_t bytes = size_t{1} << 30;
  cuda::DeviceBuffer a(bytes), b(bytes);
  a.fill_bytes(1);
  EventPair ev;
  std::vector<double> t;
  for (int i = 0; i < 12; ++i) {
    ev.start(stream);
    LOSA_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, stream));
    ev.stop(stream);
    LOSA_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (i >= 2) t.push_back(ev.micros());
  }
  return 2.0 * bytes / (median(t) * 1e3);
}

}  // namespace losa::tools
