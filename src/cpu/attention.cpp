// Prefix and block attention, naive reference in double.
#include <cmath>
#include <limits>
#include <vector>

#include "losa/errors.hpp"
#include "losa/ops.hpp"

namespace losa {
namespace {

// Softmax attention of one query over keys given by key(j)/value(j, d), j < n, in double.
template <typename KeyDot, typename ValueAt>
void attend_row(int n, int head_dim, KeyDot key_dot, ValueAt value_at, float* o, float* lse) {
  if (n == 0) {
    for (int d = 0; d < head_dim; ++d) o[d] = 0.0f;
    *lse = -std::numeric_limits<float>::infinity();
    return;
  }
  std::vector<double> s(n);
  double m = -std::numeric_limits<double>::infinity();
  for (int j = 0; j < n; ++j) {
    s[j] = key_dot(j);
    m = std::max(m, s[j]);
  }
  double sum = 0.0;
  std::vector<double> acc(head_dim, 0.0);
  for (int j = 0; j < n; ++j) {
    const double p = std::exp(s[j] - m);
    sum += p;
    for (int d = 0; d < head_dim; ++d) acc[d] += p * value_at(j, d);
  }
  for (int d = 0; d < head_dim; ++d) o[d] = static_cast<float>(acc[d] / sum);
  *lse = static_cast<float>(m + std::log(sum));
}

void check_tokens(const std::vector<int>& tokens, int block_size) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    LOSA_CHECK_ARG(tokens[i] >= 0 && tokens[i] < block_size, "tokens", "entry ", i, " = ",
                   tokens[i], " is outside [0, block_size=", block_size, ")");
    LOSA_CHECK_ARG(i == 0 || tokens[i] > tokens[i - 1], "tokens",
                   "must be sorted and unique (entry ", i, ")");
  }
}

void check_page_list(const std::vector<int>& pages, int num_pages, const char* what, size_t which) {
  for (size_t i = 0; i < pages.size(); ++i)
    LOSA_CHECK_ARG(pages[i] >= 0 && pages[i] < num_pages, "selection",
                   what, "[", which, "] holds page index ", pages[i],
                   " out of range [0, num_pages=", num_pages, ")");
}

}  // namespace

int64_t PageSelection::pages_loaded() const {
  int64_t total = 0;
  for (const auto& pages : kv_head_pages) total += static_cast<int64_t>(pages.size());
  return total;
}

PageSelection select_all_pages(int num_pages, int num_kv_heads) {
  PageSelection sel;
  sel.num_pages = num_pages;
  std::vector<int> all(num_pages);
  for (int p = 0; p < num_pages; ++p) all[p] = p;
  sel.kv_head_pages.assign(num_kv_heads, all);
  return sel;
}

void prefix_attention(const PagedKVCache& cache, int seq, const BlockShape& shape, const float* q,
                      const std::vector<int>& tokens, const PageSelection& selection, float scale,
                      float* o, float* lse) {
  validate(shape);
  const auto& kv = cache.config();
  LOSA_CHECK_ARG(kv.num_kv_heads == shape.num_kv_heads, "shape.num_kv_heads", "is ",
                 shape.num_kv_heads, " but the cache has ", kv.num_kv_heads);
  LOSA_CHECK_ARG(kv.head_dim == shape.head_dim, "shape.head_dim", "is ", shape.head_dim,
                 " but the cache has ", kv.head_dim);
  LOSA_CHECK_ARG(q != nullptr && o != nullptr && lse != nullptr, "q/o/lse", "must not be null");
  check_tokens(tokens, shape.block_size);
  const int num_pages = cache.num_pages(seq);
  LOSA_CHECK_ARG(selection.num_pages == num_pages, "selection",
                 "was made for num_pages=", selection.num_pages, " but the sequence has ",
                 num_pages);
  LOSA_CHECK_ARG(static_cast<int>(selection.kv_head_pages.size()) == shape.num_kv_heads,
                 "selection", "kv_head_pages has ", selection.kv_head_pages.size(),
                 " entries, want num_kv_heads=", shape.num_kv_heads);
  LOSA_CHECK_ARG(selection.row_pages.empty() ||
                     static_cast<int>(selection.row_pages.size()) == shape.num_rows(),
                 "selection", "row_pages has ", selection.row_pages.size(),
                 " entries, want 0 or num_rows=", shape.num_rows());
  for (size_t h = 0; h < selection.kv_head_pages.size(); ++h)
    check_page_list(selection.kv_head_pages[h], num_pages, "kv_head_pages", h);
  for (size_t r = 0; r < selection.row_pages.size(); ++r)
    check_page_list(selection.row_pages[r], num_pages, "row_pages", r);

  const int D = shape.head_dim;
  // The keys and values of a page list, decoded to float in logical order: once per KV head when
  // every row of the head reads the same pages, else once per row.
  std::vector<float> keys, values;
  int n = 0;
  auto decode = [&](const std::vector<int>& pages, int kvh) {
    n = 0;
    for (int p : pages) n += cache.tokens_in_page(seq, p);
    keys.resize(static_cast<size_t>(n) * D);
    values.resize(static_cast<size_t>(n) * D);
    size_t at = 0;
    for (int p : pages) {
      const int phys = cache.page_id(seq, p);
      for (int s = 0; s < cache.tokens_in_page(seq, p); ++s, at += D) {
        cache.key_row(phys, kvh, s, &keys[at]);
        cache.value_row(phys, kvh, s, &values[at]);
      }
    }
  };
  for (int kvh = 0; kvh < shape.num_kv_heads; ++kvh) {
    if (selection.row_pages.empty()) decode(selection.kv_head_pages[kvh], kvh);
    for (int t : tokens)
      for (int h = 0; h < shape.num_q_heads; ++h) {
        if (shape.kv_head_of(h) != kvh) continue;
        const int row = t * shape.num_q_heads + h;
        if (!selection.row_pages.empty()) decode(selection.row_pages[row], kvh);
        const float* qr = q + static_cast<size_t>(row) * D;
        attend_row(
            n, D,
            [&](int j) {
              const float* kr = &keys[static_cast<size_t>(j) * D];
              double dot = 0.0;
              for (int d = 0; d < D; ++d) dot += static_cast<double>(qr[d]) * kr[d];
              return dot * scale;
            },
            [&](int j, int d) { return static_cast<double>(values[static_cast<size_t>(j) * D + d]); },
            o + static_cast<size_t>(row) * D, lse + row);
      }
  }
}

void block_attention(const BlockShape& shape, const float* q, const float* k_blk,
                     const float* v_blk, float scale, float* o, float* lse) {
  validate(shape);
  LOSA_CHECK_ARG(q && k_blk && v_blk && o && lse, "q/k_blk/v_blk/o/lse", "must not be null");
  const int D = shape.head_dim, Hk = shape.num_kv_heads;
  for (int t = 0; t < shape.block_size; ++t)
    for (int h = 0; h < shape.num_q_heads; ++h) {
      const int row = t * shape.num_q_heads + h;
      const int kvh = shape.kv_head_of(h);
      const float* qr = q + static_cast<size_t>(row) * D;
      attend_row(
          shape.block_size, D,
          [&](int j) {
            const float* kr = k_blk + (static_cast<size_t>(j) * Hk + kvh) * D;
            double dot = 0.0;
            for (int d = 0; d < D; ++d) dot += static_cast<double>(qr[d]) * kr[d];
            return dot * scale;
          },
          [&](int j, int d) {
            return static_cast<double>(v_blk[(static_cast<size_t>(j) * Hk + kvh) * D + d]);
          },
          o + static_cast<size_t>(row) * D, lse + row);
    }
}

}  // namespace losa
