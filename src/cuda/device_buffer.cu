#include <cuda_runtime.h>

#include <utility>

#include "common.cuh"
#include "losa/cuda/device_buffer.hpp"

namespace losa::cuda {

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) LOSA_CUDA_CHECK(cudaMalloc(&data_, bytes));
}

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  LOSA_CHECK_ARG(offset + bytes <= bytes_, "bytes", "range [", offset, ", ", offset + bytes,
                 ") exceeds the buffer of ", bytes_, " bytes");
  if (!bytes) return;
  LOSA_CUDA_CHECK(cudaMemcpy(static_cast<char*>(data_) + offset, host, bytes, cudaMemcpyHostToDevice));
  // From pageable memory cudaMemcpy may return with the DMA still in flight; work on a
  // non-blocking stream does not wait for it. Synchronous means done for every stream.
  LOSA_CUDA_CHECK(cudaStreamSynchronize(nullptr));
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  LOSA_CHECK_ARG(offset + bytes <= bytes_, "bytes", "range [", offset, ", ", offset + bytes,
                 ") exceeds the buffer of ", bytes_, " bytes");
  if (bytes) LOSA_CUDA_CHECK(cudaMemcpy(host, static_cast<const char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost));
}

void DeviceBuffer::fill_bytes(int value) {
  if (!bytes_) return;
  // cudaMemset runs on the default stream, unordered with non-blocking streams: wait for it,
  // so that the buffer holds `value` before any stream's next launch.
  LOSA_CUDA_CHECK(cudaMemset(data_, value, bytes_));
  LOSA_CUDA_CHECK(cudaDeviceSynchronize());
}

DeviceBuffer upload_as(DType dtype, const std::vector<float>& host) {
  const int width = dtype_bytes(dtype);
  std::vector<unsigned char> packed(host.size() * width);
  for (size_t i = 0; i < host.size(); ++i) store_as(dtype, &packed[i * width], host[i]);
  DeviceBuffer buffer(packed.size());
  buffer.upload(packed.data(), packed.size());
  return buffer;
}

std::vector<float> download_as(DType dtype, const DeviceBuffer& buffer, size_t count) {
  const int width = dtype_bytes(dtype);
  std::vector<unsigned char> packed(count * width);
  buffer.download(packed.data(), packed.size());
  std::vector<float> host(count);
  for (size_t i = 0; i < count; ++i) host[i] = load_as(dtype, &packed[i * width]);
  return host;
}

void synchronize(Stream stream) { LOSA_CUDA_CHECK(cudaStreamSynchronize(stream)); }

}  // namespace losa::cuda
