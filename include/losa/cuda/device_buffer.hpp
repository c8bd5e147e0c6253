#pragma once
// Owning device memory, and host<->device copies with dtype conversion. Host-only header: no
// CUDA headers needed to use it.
#include <cstddef>
#include <vector>

#include "losa/dtype.hpp"

struct CUstream_st;

namespace losa::cuda {

using Stream = CUstream_st*;  ///< a cudaStream_t; nullptr is the default stream

/// cudaMalloc'd bytes, freed on destruction. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

  /// Synchronous copies (bytes from `offset`); throw BackendError on failure, ArgumentError
  /// when the range exceeds the buffer.
  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;
  /// Sets every byte to `value` (synchronous).
  void fill_bytes(int value);

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

/// Host floats converted to `dtype` (rounded to nearest even) and uploaded.
DeviceBuffer upload_as(DType dtype, const std::vector<float>& host);
/// `count` elements of `dtype` downloaded and converted to float.
std::vector<float> download_as(DType dtype, const DeviceBuffer& buffer, size_t count);

/// Blocks until all work on `stream` is done; throws BackendError on a device error.
void synchronize(Stream stream);

}  // namespace losa::cuda
