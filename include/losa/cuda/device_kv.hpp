#pragma once
// The paged KV cache of one layer and one sequence on the device: a DeviceKVCache of one layer
// whose batch is the sequences of an uploaded CPU cache, seen through one of them. For tests,
// the demo and single-sequence use; a model uses DeviceKVCache directly.
#include <cstdint>
#include <vector>

#include "losa/cuda/kv_cache.hpp"

namespace losa::cuda {

class DevicePagedKV {
 public:
  /// Allocates a pool of config.max_pages pages (bf16 or f16) on the current device, with one
  /// empty sequence.
  explicit DevicePagedKV(const PagedKVConfig& config);

  /// Copies the pool and the page tables of a CPU cache with the same config, and serves its
  /// sequence `seq` from now on.
  void upload(const PagedKVCache& cpu, int seq);

  /// Appends num_tokens tokens on `stream`: k, v are device arrays [num_tokens, Hk, D] of the
  /// storage dtype. New pages are reserved from the free pool (a host step that uploads the page
  /// table on `stream`); the key bounds of every touched page are recomputed.
  void append(const void* k, const void* v, int num_tokens, Stream stream = nullptr);

  const PagedKVConfig& config() const { return cache_.config(); }
  int kv_len() const { return static_cast<int>(cache_.kv_len(seq_)); }
  int num_pages() const { return (kv_len() + config().page_size - 1) / config().page_size; }
  int last_page_len() const { return kv_len() - (num_pages() - 1) * config().page_size; }
  /// Logical -> physical pages holding the sequence's tokens.
  std::vector<int32_t> page_table_host() const;

  /// The one-sequence view the engine reads.
  KVBatchView view() const { return cache_.view(0, seq_, 1); }
  const DeviceKVCache& cache() const { return cache_; }

 private:
  DeviceKVCache cache_;
  int seq_ = 0;
};

}  // namespace losa::cuda
