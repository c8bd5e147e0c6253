#pragma once
// A memory-mapped .safetensors file: an 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {...}}, then the data.
// The constructor validates everything a later read relies on, so that a corrupt file is an
// error naming the file and the tensor, never an out-of-bounds read. Internal to the runtime.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "losa/dtype.hpp"

namespace losa::runtime::detail {

struct SafetensorsEntry {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  ///< inside the mapping; valid while the file object lives
  uint64_t bytes = 0;
};

class SafetensorsFile {
 public:
  /// Maps `path` read-only and validates its header; throws CheckpointError naming the file
  /// (and the tensor, where one is at fault).
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& tensors() const { return tensors_; }

 private:
  void parse_header();

  std::string path_;
  void* map_ = nullptr;
  uint64_t size_ = 0;
  std::map<std::string, SafetensorsEntry> tensors_;
};

}  // namespace losa::runtime::detail
