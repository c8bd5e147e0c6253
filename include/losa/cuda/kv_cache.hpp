#pragma once
// The paged KV cache of a whole model on the device: one page pool per layer (HND layout and key
// bounds, as losa/paged_kv.hpp describes) and one page table for a batch of sequences, shared by
// all layers (every layer holds the same tokens).
//
// Pages are reserved ahead: set_batch() gives each sequence the pages of its whole capacity
// (prompt plus generation), so appending a committed block is a device operation that a CUDA
// graph can hold. The prefix lengths live on the device (kernels read them) with a host mirror
// that the host-side calls keep in step; a graph replay that advances lengths must be mirrored
// with mirror_advance().
#include <cstdint>
#include <vector>

#include "losa/cuda/device_buffer.hpp"
#include "losa/paged_kv.hpp"

namespace losa::cuda {

/// A token-major device tensor: token t's heads are contiguous at data + t * stride elements
/// (stride 0: densely packed). Lets q, k and v be slices of one fused QKV output.
struct TokenTensor {
  const void* data = nullptr;
  int64_t stride = 0;
};

/// What the engine reads of one layer for a range of sequences (device pointers).
struct KVBatchView {
  PagedKVConfig config;
  const void* keys = nullptr;
  const void* values = nullptr;
  const void* key_min = nullptr;
  const void* key_max = nullptr;
  const int8_t* bounds8 = nullptr;    ///< 8-bit bounds, or null when the cache keeps none
  const float* bound_scale = nullptr;
  const int32_t* page_indptr = nullptr;  ///< [num_seqs + 1]
  const int32_t* page_indices = nullptr;
  const int32_t* kv_len = nullptr;       ///< [num_seqs]
  int num_seqs = 0;
  int max_reserved_pages = 0;  ///< the most pages any of these sequences has reserved
  int64_t version = 0;         ///< changes whenever these sequences' lengths change (host)
};

class DeviceKVCache {
 public:
  /// config.max_pages pages per layer (the pool all sequences share), bf16 or f16; with
  /// config.keep_bounds8 also the 8-bit conservative bounds (DESIGN.md section 2).
  /// Throws ArgumentError naming a bad argument before allocating anything.
  explicit DeviceKVCache(const PagedKVConfig& config, int num_layers = 1);

  /// Bytes a cache of this shape allocates (checked in 64 bits before any allocation).
  static int64_t bytes_needed(const PagedKVConfig& config, int num_layers);

  /// Replaces the batch: sequence s starts empty with pages reserved for capacity_tokens[s]
  /// tokens. Throws ArgumentError if the pool has too few pages.
  void set_batch(const std::vector<int64_t>& capacity_tokens, Stream stream = nullptr);

  /// Grows sequence `seq`'s reservation to at least capacity_tokens (new pages from the pool;
  /// the page table is uploaded on `stream`). Host-side: not inside a graph.
  void reserve(int seq, int64_t capacity_tokens, Stream stream = nullptr);

  /// Copies a CPU cache of the same config (all its sequences, pages and bounds) into layer
  /// `layer`. The first upload adopts its page table and lengths, reserving extra_tokens more
  /// per sequence from the free pages; later uploads (other layers) must have the same table.
  void upload(const PagedKVCache& cpu, int layer, int64_t extra_tokens = 0, Stream stream = nullptr);

  /// Appends num_tokens tokens to each of sequences [first_seq, first_seq + num_seqs) of layer
  /// `layer` at its current length, and refreshes the touched pages' bounds. k, v:
  /// [num_seqs * num_tokens, Hk, D] of the cache's dtype. A device operation (graph-capturable);
  /// lengths do not change until advance().
  /// seq_mask (device, [num_seqs], nullable): sequences whose entry is zero are left as they are.
  void append(int layer, int first_seq, int num_seqs, TokenTensor k, TokenTensor v, int num_tokens,
              Stream stream = nullptr, const uint8_t* seq_mask = nullptr);
  /// Adds num_tokens to the lengths of sequences [first_seq, first_seq + num_seqs), on the
  /// device and in the host mirror (not while `stream` is capturing a graph: then each replay is
  /// mirrored with mirror_advance()). Throws ArgumentError past a sequence's reserved capacity.
  /// With a mask, only the sequences whose entry is non-zero advance: seq_mask on the device
  /// (read by the launch) and host_mask, its host copy, for the mirror.
  void advance(int first_seq, int num_seqs, int num_tokens, Stream stream = nullptr,
               const uint8_t* seq_mask = nullptr, const std::vector<uint8_t>* host_mask = nullptr);
  /// Only the host mirror: for a replayed graph that holds advance()'s launch.
  void mirror_advance(int first_seq, int num_seqs, int num_tokens, const std::vector<uint8_t>* host_mask = nullptr);

  KVBatchView view(int layer, int first_seq = 0, int num_seqs = -1) const;

  const PagedKVConfig& config() const { return config_; }
  int num_layers() const { return num_layers_; }
  int num_seqs() const { return static_cast<int>(kv_len_.size()); }
  int64_t kv_len(int seq) const;            ///< host mirror
  int64_t capacity_tokens(int seq) const;   ///< reserved pages times page size
  int reserved_pages(int seq) const;
  /// Logical -> physical pages reserved for `seq`.
  std::vector<int32_t> page_table(int seq) const;
  int free_pages() const { return static_cast<int>(free_.size()); }
  int64_t bytes() const;

  // Raw layer pools (tests, benchmarks).
  const void* keys(int layer) const;
  const void* values(int layer) const;
  const void* key_min(int layer) const;
  const void* key_max(int layer) const;
  const int8_t* bounds8(int layer) const;
  const float* bound_scale(int layer) const;

 private:
  void check_seq_range(int first_seq, int num_seqs, const char* function) const;
  void upload_table(Stream stream);
  size_t layer_kv_bytes() const;
  size_t layer_bounds_bytes() const;

  PagedKVConfig config_;
  int num_layers_ = 0;
  DeviceBuffer keys_, values_, key_min_, key_max_, bounds8_, bound_scale_;
  DeviceBuffer indptr_dev_, indices_dev_, kv_len_dev_;
  std::vector<int32_t> indptr_, indices_, free_;
  std::vector<int64_t> kv_len_;
  int64_t version_ = 0;
};

}  // namespace losa::cuda
