#pragma once
// A batch's shape checked once for every backend: each sequence's prefill is whole blocks and
// fits its capacity, pages are counted in 64 bits, and the paged cache of one layer is sized.
#include <cstdint>
#include <vector>

#include "losa/paged_kv.hpp"
#include "losa/runtime/backend.hpp"

namespace losa::runtime::detail {

struct BatchLayout {
  int num_seqs = 0;
  int64_t pages = 0;              ///< pages per layer, all sequences
  int64_t max_pages_per_seq = 1;  ///< the most pages one sequence reserves (at least 1)
  PagedKVConfig kv;               ///< one layer's cache: config's heads and dim, the options' page size and dtype
};

/// Throws ArgumentError naming prefill_tokens or capacity_tokens (an empty batch, mismatched
/// sizes, a prefill not a multiple of block_size, a capacity below its prefill, a page count past
/// what a page table holds).
BatchLayout plan_batch(const ModelConfig& config, const ForwardOptions& options,
                       const std::vector<std::vector<int32_t>>& prefill_tokens,
                       const std::vector<int64_t>& capacity_tokens);

}  // namespace losa::runtime::detail
