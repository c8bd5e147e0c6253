#include "batch_layout.hpp"

#include <algorithm>
#include <climits>

#include "losa/errors.hpp"

namespace losa::runtime::detail {

BatchLayout plan_batch(const ModelConfig& config, const ForwardOptions& options,
                       const std::vector<std::vector<int32_t>>& prefill_tokens,
                       const std::vector<int64_t>& capacity_tokens) {
  BatchLayout b;
  b.num_seqs = static_cast<int>(prefill_tokens.size());
  LOSA_CHECK_ARG(b.num_seqs >= 1, "prefill_tokens", "must hold at least one sequence");
  LOSA_CHECK_ARG(capacity_tokens.size() == prefill_tokens.size(), "capacity_tokens", "has ",
                 capacity_tokens.size(), " entries for ", b.num_seqs, " sequences");
  const int B = options.block_size, P = options.page_size;
  for (int s = 0; s < b.num_seqs; ++s) {
    const int64_t n = static_cast<int64_t>(prefill_tokens[s].size());
    LOSA_CHECK_ARG(n % B == 0, "prefill_tokens", "sequence ", s, " has ", n,
                   " tokens, not a multiple of block_size=", B);
    LOSA_CHECK_ARG(capacity_tokens[s] >= n, "capacity_tokens", "entry ", s, " = ", capacity_tokens[s],
                   " is below its ", n, " prefill tokens");
    const int64_t pages = (capacity_tokens[s] + P - 1) / P;
    b.pages += pages;
    b.max_pages_per_seq = std::max(b.max_pages_per_seq, pages);
  }
  LOSA_CHECK_ARG(b.pages <= INT32_MAX, "capacity_tokens", "needs ", b.pages,
                 " pages per layer, more than a page table holds");
  b.kv.num_kv_heads = config.num_key_value_heads;
  b.kv.head_dim = config.head_dim;
  b.kv.page_size = P;
  b.kv.max_pages = static_cast<int>(std::max<int64_t>(b.pages, 1));
  b.kv.dtype = options.kv_dtype;
  b.kv.keep_bounds8 = options.mode.bounds8 || options.keep_bounds8;
  return b;
}

}  // namespace losa::runtime::detail
