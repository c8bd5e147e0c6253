// SparseD's head-specific page selection by attention mass: naive reference.
#include <cmath>

#include "losa/errors.hpp"
#include "losa/ops.hpp"

namespace losa {

int sparsed_pages_kept(int num_pages, double select_fraction) {
  LOSA_CHECK_ARG(select_fraction > 0.0 && select_fraction <= 1.0, "select_fraction",
                 "must be in (0, 1], got ", select_fraction);
  const int kept = static_cast<int>(std::ceil(select_fraction * num_pages - 1e-9));
  return std::min(num_pages, std::max(1, kept));
}

std::vector<double> sparsed_page_mass(const PagedKVCache& cache, int seq, const BlockShape& shape,
                                      const float* q, const float* lse_full, float scale) {
  validate(shape);
  LOSA_CHECK_ARG(cache.config().num_kv_heads == shape.num_kv_heads, "shape.num_kv_heads",
                 "does not match the cache");
  LOSA_CHECK_ARG(cache.config().head_dim == shape.head_dim, "shape.head_dim",
                 "does not match the cache");
  LOSA_CHECK_ARG(q != nullptr && lse_full != nullptr, "q/lse_full", "must not be null");
  const int n = cache.num_pages(seq), D = shape.head_dim, Hq = shape.num_q_heads;
  std::vector<double> mass(static_cast<size_t>(Hq) * n, 0.0);
  for (int h = 0; h < Hq; ++h) {
    const int kvh = shape.kv_head_of(h);
    for (int p = 0; p < n; ++p) {
      const int phys = cache.page_id(seq, p);
      double m = 0.0;
      for (int t = 0; t < shape.block_size; ++t) {
        const int row = t * Hq + h;
        const float* qr = q + static_cast<size_t>(row) * D;
        for (int s = 0; s < cache.tokens_in_page(seq, p); ++s) {
          double dot = 0.0;
          for (int d = 0; d < D; ++d) dot += static_cast<double>(qr[d]) * cache.key(phys, kvh, s, d);
          m += std::exp(dot * scale - static_cast<double>(lse_full[row]));
        }
      }
      mass[static_cast<size_t>(h) * n + p] = m;
    }
  }
  return mass;
}

PageSelection sparsed_select(const std::vector<double>& mass, const BlockShape& shape,
                             int num_pages, double select_fraction, Attend attend) {
  validate(shape);
  LOSA_CHECK_ARG(mass.size() == static_cast<size_t>(shape.num_q_heads) * num_pages, "mass",
                 "has ", mass.size(), " entries, want num_q_heads * num_pages = ",
                 static_cast<size_t>(shape.num_q_heads) * num_pages);
  PageSelection sel;
  sel.num_pages = num_pages;
  if (num_pages == 0) {
    sel.kv_head_pages.assign(shape.num_kv_heads, {});
    return sel;
  }
  const int kept = sparsed_pages_kept(num_pages, select_fraction);
  std::vector<std::vector<int>> head_pages(shape.num_q_heads);
  for (int h = 0; h < shape.num_q_heads; ++h)
    head_pages[h] = top_k_indices(&mass[static_cast<size_t>(h) * num_pages], num_pages, kept);
  sel.row_pages.resize(shape.num_rows());
  for (int r = 0; r < shape.num_rows(); ++r) sel.row_pages[r] = head_pages[r % shape.num_q_heads];
  sel.kv_head_pages = union_per_kv_head(sel.row_pages, shape);
  if (attend == Attend::union_) sel.row_pages.clear();
  return sel;
}

}  // namespace losa
