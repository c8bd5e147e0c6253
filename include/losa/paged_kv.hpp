#pragma once
// Paged KV cache in FlashInfer's CSR form, with QUEST's per-page key bounds.
//
// Storage layout (HND, as FlashInfer's kv_layout="HND"): one page of one KV head is a contiguous
// [page_size, head_dim] tile, so a kernel loads a page with wide contiguous reads.
//   keys, values: [max_pages, num_kv_heads, page_size, head_dim]   (storage dtype)
//   key_min, key_max: [max_pages, num_kv_heads, head_dim]           (storage dtype; the bounds of
//                     keys already in that dtype are exact in it)
//   with keep_bounds8, also bounds8: [max_pages, num_kv_heads, 2, head_dim] int8 (min rounded
//                     down, then max rounded up) and bound_scale: [max_pages, num_kv_heads] fp32
//                     (losa/bounds8.hpp)
// Page table per sequence s (CSR): pages indices[indptr[s] .. indptr[s+1]) in logical order,
// the last one holding last_page_len[s] valid tokens (1..page_size); kv_len = (n-1)*P + last.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "losa/dtype.hpp"

namespace losa {

/// True for the head dims every backend implements (64, 128).
bool is_supported_head_dim(int head_dim);
/// True for the page sizes every backend implements (16, 32, 64).
bool is_supported_page_size(int page_size);

struct PagedKVConfig {
  int num_kv_heads = 8;
  int head_dim = 128;
  int page_size = 16;
  int max_pages = 0;  ///< capacity of the page pool (all sequences)
  DType dtype = DType::bf16;
  /// Also keep 8-bit conservative key bounds (a quarter of fp32's bytes, half of bf16's).
  bool keep_bounds8 = false;
  /// Physical pages are handed out in a permuted order when non-zero, so that tests catch code
  /// that confuses logical and physical page indices.
  uint64_t page_order_seed = 0;
};

/// Throws ArgumentError naming the first bad field.
void validate(const PagedKVConfig& config);

class PagedKVCache {
 public:
  explicit PagedKVCache(const PagedKVConfig& config);

  const PagedKVConfig& config() const { return config_; }

  /// Starts an empty sequence and returns its index.
  int add_sequence();
  int num_sequences() const { return static_cast<int>(last_page_len_.size()); }

  /// Appends num_tokens tokens to sequence `seq`, filling the last page first and taking new
  /// pages from the pool as needed; updates the key bounds of every page touched.
  /// k, v: [num_tokens, num_kv_heads, head_dim], rounded to the storage dtype.
  void append(int seq, const float* k, const float* v, int num_tokens);

  int kv_len(int seq) const;
  int num_pages(int seq) const;
  /// Physical page id of logical page `logical_page` of `seq`.
  int page_id(int seq, int logical_page) const;
  /// Valid tokens in logical page `logical_page` of `seq` (page_size except maybe the last).
  int tokens_in_page(int seq, int logical_page) const;

  // CSR page table, FlashInfer-style.
  const std::vector<int32_t>& indptr() const { return indptr_; }
  const std::vector<int32_t>& indices() const { return indices_; }
  const std::vector<int32_t>& last_page_len() const { return last_page_len_; }

  /// Element accessors, decoded to float.
  float key(int page, int kv_head, int slot, int dim) const;
  float value(int page, int kv_head, int slot, int dim) const;
  /// One slot's head_dim keys (values) decoded to float into out: key()/value() for every dim,
  /// without a call and an offset per element (the CPU attention's inner loop).
  void key_row(int page, int kv_head, int slot, float* out) const;
  void value_row(int page, int kv_head, int slot, float* out) const;
  float key_min(int page, int kv_head, int dim) const;
  float key_max(int page, int kv_head, int dim) const;
  /// 8-bit bounds (keep_bounds8): the stored integers and the page's scale; the bounds they
  /// stand for are q_min * scale <= key_min and q_max * scale >= key_max.
  int bound8_min(int page, int kv_head, int dim) const;
  int bound8_max(int page, int kv_head, int dim) const;
  float bound8_scale(int page, int kv_head) const;

  // Raw storage, for uploading to a device. Sizes in bytes.
  const void* keys_data() const { return keys_.data(); }
  const void* values_data() const { return values_.data(); }
  const void* key_min_data() const { return key_min_.data(); }
  const void* key_max_data() const { return key_max_.data(); }
  const int8_t* bounds8_data() const { return bounds8_.data(); }
  const float* bound_scale_data() const { return bound_scale_.data(); }
  size_t page_pool_bytes() const { return keys_.size(); }
  size_t bounds_bytes() const { return key_min_.size(); }
  /// Bytes of one page of one KV head, keys and values together.
  size_t page_kv_bytes() const;
  /// Bytes of one page's key bounds for one KV head, min and max together (bounds8: the 8-bit
  /// bounds and their scale).
  size_t page_bounds_bytes(bool bounds8 = false) const;

 private:
  size_t kv_offset(int page, int kv_head, int slot, int dim) const;
  /// key_row / value_row of `storage` (keys_ or values_).
  void decode_row(const std::vector<uint8_t>& storage, int page, int kv_head, int slot, float* out) const;
  size_t bound_offset(int page, int kv_head, int dim) const;
  void check_seq(int seq, const char* function) const;
  void refresh_bounds(int page, int first_slot, int end_slot, bool fresh_page);

  PagedKVConfig config_;
  int element_bytes_;
  std::vector<uint8_t> keys_, values_, key_min_, key_max_;
  std::vector<int8_t> bounds8_;
  std::vector<float> bound_scale_;
  std::vector<int32_t> free_pages_;              // popped from the back
  std::vector<std::vector<int32_t>> seq_pages_;  // logical -> physical, per sequence
  std::vector<int32_t> indptr_, indices_, last_page_len_;
};

}  // namespace losa
