#include <cstdint>

#include "../../src/cuda/check.hpp"
#include "../../src/cuda/launch.cuh"
#include "pdl_producer.hpp"

namespace losa::test {
namespace {

__global__ void late_copy_kernel(const uint32_t* src, uint32_t* dst, size_t words, long long spin_cycles) {
  losa::cuda::allow_successor();  // the successor's CTAs may start now
  const long long t0 = clock64();
  while (clock64() - t0 < spin_cycles) {
  }
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < words;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

}  // namespace

void launch_late_copy(const void* src, void* dst, size_t bytes, cudaStream_t stream) {
  constexpr long long kSpinCycles = 200000;  // ~100 us at the H100's clocks
  late_copy_kernel<<<8, 256, 0, stream>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), bytes / 4,
                                          kSpinCycles);
  LOSA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace losa::test
