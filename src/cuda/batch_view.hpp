#pragma once
// The kernels' view of one layer of a batch (params.hpp) from the public KVBatchView.
#include "losa/cuda/kv_cache.hpp"
#include "params.hpp"

namespace losa::cuda {

/// with_bounds8: hand the kernels the 8-bit bounds (QUEST scoring from them), else none.
inline PagedKVView kernel_view(const KVBatchView& kv, bool with_bounds8) {
  PagedKVView v;
  v.keys = kv.keys;
  v.values = kv.values;
  v.key_min = kv.key_min;
  v.key_max = kv.key_max;
  v.bounds8 = with_bounds8 ? kv.bounds8 : nullptr;
  v.bound_scale = with_bounds8 ? kv.bound_scale : nullptr;
  v.page_indptr = kv.page_indptr;
  v.page_indices = kv.page_indices;
  v.kv_len = kv.kv_len;
  v.num_kv_heads = kv.config.num_kv_heads;
  v.page_size = kv.config.page_size;
  return v;
}

}  // namespace losa::cuda
