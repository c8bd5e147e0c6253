#include <cuda_runtime.h>

#include <cstdio>

#include "check.hpp"
#include "losa/cuda/device.hpp"

namespace losa::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

int multiprocessor_count() {
  int device = 0, sms = 0;
  LOSA_CUDA_CHECK(cudaGetDevice(&device));
  LOSA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

int shared_memory_per_block_optin() {
  int device = 0, bytes = 0;
  LOSA_CUDA_CHECK(cudaGetDevice(&device));
  LOSA_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return bytes;
}

std::string describe_device(int device) {
  cudaDeviceProp prop{};
  if (device < 0 || device >= device_count() || cudaGetDeviceProperties(&prop, device) != cudaSuccess)
    return {};
  char text[256];
  std::snprintf(text, sizeof(text), "%s, sm_%d%d, %d SMs, %d MiB L2", prop.name, prop.major,
                prop.minor, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  return text;
}

}  // namespace losa::cuda
