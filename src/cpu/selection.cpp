// QUEST page scoring and selection, top-k, union per KV head: naive reference.
#include <algorithm>
#include <numeric>

#include "losa/errors.hpp"
#include "losa/ops.hpp"

namespace losa {

std::vector<int> top_k_indices(const double* scores, int n, int k) {
  LOSA_CHECK_ARG(n >= 0, "n", "must be >= 0, got ", n);
  LOSA_CHECK_ARG(k >= 0, "k", "must be >= 0, got ", k);
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (k >= n) return idx;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<double> quest_page_scores(const PagedKVCache& cache, int seq, const BlockShape& shape,
                                      const float* q, const std::vector<int>& tokens, bool bounds8) {
  validate(shape);
  LOSA_CHECK_ARG(cache.config().num_kv_heads == shape.num_kv_heads, "shape.num_kv_heads",
                 "does not match the cache");
  LOSA_CHECK_ARG(cache.config().head_dim == shape.head_dim, "shape.head_dim",
                 "does not match the cache");
  LOSA_CHECK_ARG(q != nullptr, "q", "must not be null");
  LOSA_CHECK_ARG(!bounds8 || cache.config().keep_bounds8, "bounds8",
                 "needs a cache that keeps 8-bit bounds (PagedKVConfig::keep_bounds8)");
  const int n = cache.num_pages(seq), D = shape.head_dim, Hq = shape.num_q_heads;
  std::vector<double> scores(tokens.size() * Hq * static_cast<size_t>(n));
  for (size_t ti = 0; ti < tokens.size(); ++ti) {
    LOSA_CHECK_ARG(tokens[ti] >= 0 && tokens[ti] < shape.block_size, "tokens", "entry ", ti,
                   " out of range");
    for (int h = 0; h < Hq; ++h) {
      const float* qr = q + (static_cast<size_t>(tokens[ti]) * Hq + h) * D;
      const int kvh = shape.kv_head_of(h);
      for (int p = 0; p < n; ++p) {
        const int phys = cache.page_id(seq, p);
        double s = 0.0;
        for (int d = 0; d < D; ++d) {
          const double lo = static_cast<double>(qr[d]) *
                            (bounds8 ? cache.bound8_min(phys, kvh, d) : cache.key_min(phys, kvh, d));
          const double hi = static_cast<double>(qr[d]) *
                            (bounds8 ? cache.bound8_max(phys, kvh, d) : cache.key_max(phys, kvh, d));
          s += std::max(lo, hi);
        }
        scores[(ti * Hq + h) * n + p] = bounds8 ? s * cache.bound8_scale(phys, kvh) : s;
      }
    }
  }
  return scores;
}

std::vector<int> quest_row_pages(const double* row_scores, int num_pages, int budget_pages) {
  LOSA_CHECK_ARG(budget_pages >= 0, "budget_pages", "must be >= 0, got ", budget_pages);
  if (num_pages == 0) return {};
  std::vector<int> pages = top_k_indices(row_scores, num_pages - 1, budget_pages);
  pages.push_back(num_pages - 1);  // the block's nearest context is always kept
  return pages;
}

std::vector<std::vector<int>> union_per_kv_head(const std::vector<std::vector<int>>& row_pages,
                                                const BlockShape& shape) {
  validate(shape);
  LOSA_CHECK_ARG(static_cast<int>(row_pages.size()) == shape.num_rows(), "row_pages", "has ",
                 row_pages.size(), " entries, want num_rows=", shape.num_rows());
  std::vector<std::vector<int>> unions(shape.num_kv_heads);
  for (int r = 0; r < shape.num_rows(); ++r) {
    auto& u = unions[shape.kv_head_of(r % shape.num_q_heads)];
    u.insert(u.end(), row_pages[r].begin(), row_pages[r].end());
  }
  for (auto& u : unions) {
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
  }
  return unions;
}

PageSelection quest_select(const PagedKVCache& cache, int seq, const BlockShape& shape,
                           const float* q, const std::vector<int>& tokens, int budget_tokens,
                           Attend attend, bool bounds8) {
  LOSA_CHECK_ARG(budget_tokens > 0, "budget_tokens", "must be > 0, got ", budget_tokens);
  const int n = cache.num_pages(seq);
  const int budget_pages = budget_tokens / cache.config().page_size;
  const std::vector<double> scores = quest_page_scores(cache, seq, shape, q, tokens, bounds8);
  PageSelection sel;
  sel.num_pages = n;
  sel.row_pages.assign(shape.num_rows(), {});
  for (size_t ti = 0; ti < tokens.size(); ++ti)
    for (int h = 0; h < shape.num_q_heads; ++h)
      sel.row_pages[tokens[ti] * shape.num_q_heads + h] =
          quest_row_pages(&scores[(ti * shape.num_q_heads + h) * n], n, budget_pages);
  sel.kv_head_pages = union_per_kv_head(sel.row_pages, shape);
  if (attend == Attend::union_) sel.row_pages.clear();
  return sel;
}

}  // namespace losa
