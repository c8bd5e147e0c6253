#pragma once
// The paged KV cache on the device, for one sequence: the page pool (HND layout and key bounds,
// as losa/paged_kv.hpp describes) and the sequence's page table.
#include <cstdint>
#include <vector>

#include "losa/cuda/device_buffer.hpp"
#include "losa/paged_kv.hpp"

namespace losa::cuda {

class DevicePagedKV {
 public:
  /// Allocates a pool of config.max_pages pages (bf16 or f16) on the current device.
  explicit DevicePagedKV(const PagedKVConfig& config);

  /// Copies the pool and the page table of sequence `seq` of a CPU cache with the same config.
  void upload(const PagedKVCache& cpu, int seq);

  /// Appends num_tokens tokens on `stream`: k, v are device arrays [num_tokens, Hk, D] of the
  /// storage dtype. New pages come from the free pool; the key bounds of every touched page are
  /// recomputed. The page-table upload synchronises the host (appends are outside the step).
  void append(const void* k, const void* v, int num_tokens, Stream stream = nullptr);

  const PagedKVConfig& config() const { return config_; }
  int kv_len() const { return kv_len_; }
  int num_pages() const { return static_cast<int>(pages_.size()); }
  int last_page_len() const { return kv_len_ - (num_pages() - 1) * config_.page_size; }
  /// Logical -> physical page of the sequence, as the host sees it.
  const std::vector<int32_t>& page_table_host() const { return pages_; }

  const void* keys() const { return keys_.data(); }
  const void* values() const { return values_.data(); }
  const void* key_min() const { return key_min_.data(); }
  const void* key_max() const { return key_max_.data(); }
  const int32_t* page_table() const { return page_table_.as<int32_t>(); }

 private:
  PagedKVConfig config_;
  DeviceBuffer keys_, values_, key_min_, key_max_, page_table_;
  std::vector<int32_t> pages_, free_pages_;
  int kv_len_ = 0;
};

}  // namespace losa::cuda
