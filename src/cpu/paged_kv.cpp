#include "losa/paged_kv.hpp"

#include <algorithm>
#include <numeric>
#include <random>

#include "losa/bounds8.hpp"
#include "losa/errors.hpp"

namespace losa {

bool is_supported_head_dim(int head_dim) { return head_dim == 64 || head_dim == 128; }
bool is_supported_page_size(int page_size) {
  return page_size == 16 || page_size == 32 || page_size == 64;
}

void validate(const PagedKVConfig& c) {
  LOSA_CHECK_ARG(c.num_kv_heads > 0, "num_kv_heads", "must be > 0, got ", c.num_kv_heads);
  LOSA_CHECK_ARG(is_supported_head_dim(c.head_dim), "head_dim", "must be 64 or 128, got ",
                 c.head_dim);
  LOSA_CHECK_ARG(is_supported_page_size(c.page_size), "page_size", "must be 16, 32 or 64, got ",
                 c.page_size);
  LOSA_CHECK_ARG(c.max_pages > 0, "max_pages", "must be > 0, got ", c.max_pages);
}

PagedKVCache::PagedKVCache(const PagedKVConfig& config)
    : config_(config), element_bytes_(dtype_bytes(config.dtype)) {
  validate(config_);
  const size_t kv_elems = static_cast<size_t>(config_.max_pages) * config_.num_kv_heads *
                          config_.page_size * config_.head_dim;
  const size_t bound_elems =
      static_cast<size_t>(config_.max_pages) * config_.num_kv_heads * config_.head_dim;
  keys_.assign(kv_elems * element_bytes_, 0);
  values_.assign(kv_elems * element_bytes_, 0);
  key_min_.assign(bound_elems * element_bytes_, 0);
  key_max_.assign(bound_elems * element_bytes_, 0);
  if (config_.keep_bounds8) {
    bounds8_.assign(2 * bound_elems, 0);
    bound_scale_.assign(bound_elems / config_.head_dim, 0.0f);
  }
  free_pages_.resize(config_.max_pages);
  std::iota(free_pages_.rbegin(), free_pages_.rend(), 0);  // page 0 is handed out first
  if (config_.page_order_seed != 0) {
    std::mt19937_64 rng(config_.page_order_seed);
    std::shuffle(free_pages_.begin(), free_pages_.end(), rng);
  }
  indptr_.push_back(0);
}

int PagedKVCache::add_sequence() {
  seq_pages_.emplace_back();
  last_page_len_.push_back(0);
  indptr_.push_back(indptr_.back());
  return num_sequences() - 1;
}

void PagedKVCache::check_seq(int seq, const char* function) const {
  if (seq < 0 || seq >= num_sequences())
    throw ArgumentError(function, "seq",
                        detail::concat("must be in [0, ", num_sequences(), "), got ", seq));
}

size_t PagedKVCache::kv_offset(int page, int kv_head, int slot, int dim) const {
  return ((static_cast<size_t>(page) * config_.num_kv_heads + kv_head) * config_.page_size + slot) *
             config_.head_dim +
         dim;
}

size_t PagedKVCache::bound_offset(int page, int kv_head, int dim) const {
  return (static_cast<size_t>(page) * config_.num_kv_heads + kv_head) * config_.head_dim + dim;
}

void PagedKVCache::append(int seq, const float* k, const float* v, int num_tokens) {
  check_seq(seq, "append");
  LOSA_CHECK_ARG(num_tokens >= 0, "num_tokens", "must be >= 0, got ", num_tokens);
  LOSA_CHECK_ARG(num_tokens == 0 || (k != nullptr && v != nullptr), "k/v", "must not be null");
  const int P = config_.page_size;
  const int room = seq_pages_[seq].empty() ? 0 : P - last_page_len_[seq];
  const int new_pages = (std::max(0, num_tokens - room) + P - 1) / P;
  LOSA_CHECK_ARG(new_pages <= static_cast<int>(free_pages_.size()), "num_tokens",
                 "needs ", new_pages, " new pages but only ", free_pages_.size(),
                 " are free (max_pages=", config_.max_pages, ")");
  const int H = config_.num_kv_heads, D = config_.head_dim;
  int done = 0;
  while (done < num_tokens) {
    bool fresh = false;
    if (seq_pages_[seq].empty() || last_page_len_[seq] == P) {
      seq_pages_[seq].push_back(free_pages_.back());
      free_pages_.pop_back();
      last_page_len_[seq] = 0;
      fresh = true;
    }
    const int page = seq_pages_[seq].back();
    const int first_slot = last_page_len_[seq];
    const int count = std::min(P - first_slot, num_tokens - done);
    for (int t = 0; t < count; ++t)
      for (int h = 0; h < H; ++h)
        for (int d = 0; d < D; ++d) {
          const size_t src = (static_cast<size_t>(done + t) * H + h) * D + d;
          const size_t dst = kv_offset(page, h, first_slot + t, d) * element_bytes_;
          store_as(config_.dtype, &keys_[dst], k[src]);
          store_as(config_.dtype, &values_[dst], v[src]);
        }
    refresh_bounds(page, first_slot, first_slot + count, fresh);
    last_page_len_[seq] = first_slot + count;
    done += count;
  }
  // Rebuild the CSR view (cheap: one int per page).
  indices_.clear();
  for (int s = 0; s < num_sequences(); ++s) {
    indptr_[s] = static_cast<int32_t>(indices_.size());
    indices_.insert(indices_.end(), seq_pages_[s].begin(), seq_pages_[s].end());
  }
  indptr_[num_sequences()] = static_cast<int32_t>(indices_.size());
}

void PagedKVCache::refresh_bounds(int page, int first_slot, int end_slot, bool fresh_page) {
  const DType t = config_.dtype;
  for (int h = 0; h < config_.num_kv_heads; ++h)
    for (int d = 0; d < config_.head_dim; ++d) {
      float lo = fresh_page ? key(page, h, first_slot, d) : key_min(page, h, d);
      float hi = fresh_page ? lo : key_max(page, h, d);
      for (int s = first_slot; s < end_slot; ++s) {
        const float x = key(page, h, s, d);
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
      const size_t off = bound_offset(page, h, d) * element_bytes_;
      store_as(t, &key_min_[off], lo);
      store_as(t, &key_max_[off], hi);
    }
  if (!config_.keep_bounds8) return;
  const int D = config_.head_dim;
  for (int h = 0; h < config_.num_kv_heads; ++h) {
    float largest = 0.0f;
    for (int d = 0; d < D; ++d)
      largest = std::max({largest, std::abs(key_min(page, h, d)), std::abs(key_max(page, h, d))});
    const float scale = ::losa::bound8_scale(largest);
    const size_t head = static_cast<size_t>(page) * config_.num_kv_heads + h;
    bound_scale_[head] = scale;
    for (int d = 0; d < D; ++d) {
      bounds8_[head * 2 * D + d] = bound8_down(key_min(page, h, d), scale);
      bounds8_[head * 2 * D + D + d] = bound8_up(key_max(page, h, d), scale);
    }
  }
}

int PagedKVCache::kv_len(int seq) const {
  check_seq(seq, "kv_len");
  const int n = static_cast<int>(seq_pages_[seq].size());
  return n == 0 ? 0 : (n - 1) * config_.page_size + last_page_len_[seq];
}

int PagedKVCache::num_pages(int seq) const {
  check_seq(seq, "num_pages");
  return static_cast<int>(seq_pages_[seq].size());
}

int PagedKVCache::page_id(int seq, int logical_page) const {
  check_seq(seq, "page_id");
  LOSA_CHECK_ARG(logical_page >= 0 && logical_page < num_pages(seq), "logical_page",
                 "must be in [0, ", num_pages(seq), "), got ", logical_page);
  return seq_pages_[seq][logical_page];
}

int PagedKVCache::tokens_in_page(int seq, int logical_page) const {
  const int n = num_pages(seq);
  LOSA_CHECK_ARG(logical_page >= 0 && logical_page < n, "logical_page", "must be in [0, ", n,
                 "), got ", logical_page);
  return logical_page == n - 1 ? last_page_len_[seq] : config_.page_size;
}

float PagedKVCache::key(int page, int kv_head, int slot, int dim) const {
  return load_as(config_.dtype, &keys_[kv_offset(page, kv_head, slot, dim) * element_bytes_]);
}
float PagedKVCache::value(int page, int kv_head, int slot, int dim) const {
  return load_as(config_.dtype, &values_[kv_offset(page, kv_head, slot, dim) * element_bytes_]);
}
void PagedKVCache::decode_row(const std::vector<uint8_t>& storage, int page, int kv_head, int slot,
                              float* out) const {
  const uint8_t* src = &storage[kv_offset(page, kv_head, slot, 0) * element_bytes_];
  for (int d = 0; d < config_.head_dim; ++d) out[d] = load_as(config_.dtype, src + d * element_bytes_);
}
void PagedKVCache::key_row(int page, int kv_head, int slot, float* out) const {
  decode_row(keys_, page, kv_head, slot, out);
}
void PagedKVCache::value_row(int page, int kv_head, int slot, float* out) const {
  decode_row(values_, page, kv_head, slot, out);
}
float PagedKVCache::key_min(int page, int kv_head, int dim) const {
  return load_as(config_.dtype, &key_min_[bound_offset(page, kv_head, dim) * element_bytes_]);
}
float PagedKVCache::key_max(int page, int kv_head, int dim) const {
  return load_as(config_.dtype, &key_max_[bound_offset(page, kv_head, dim) * element_bytes_]);
}

size_t PagedKVCache::page_kv_bytes() const {
  return 2ull * config_.page_size * config_.head_dim * element_bytes_;
}
int PagedKVCache::bound8_min(int page, int kv_head, int dim) const {
  LOSA_CHECK_ARG(config_.keep_bounds8, "config.keep_bounds8", "is off: the cache keeps no 8-bit bounds");
  return bounds8_[(static_cast<size_t>(page) * config_.num_kv_heads + kv_head) * 2 * config_.head_dim + dim];
}
int PagedKVCache::bound8_max(int page, int kv_head, int dim) const {
  LOSA_CHECK_ARG(config_.keep_bounds8, "config.keep_bounds8", "is off: the cache keeps no 8-bit bounds");
  return bounds8_[(static_cast<size_t>(page) * config_.num_kv_heads + kv_head) * 2 * config_.head_dim +
                  config_.head_dim + dim];
}
float PagedKVCache::bound8_scale(int page, int kv_head) const {
  LOSA_CHECK_ARG(config_.keep_bounds8, "config.keep_bounds8", "is off: the cache keeps no 8-bit bounds");
  return bound_scale_[static_cast<size_t>(page) * config_.num_kv_heads + kv_head];
}

size_t PagedKVCache::page_bounds_bytes(bool bounds8) const {
  return bounds8 ? 2ull * config_.head_dim + sizeof(float) : 2ull * config_.head_dim * element_bytes_;
}

}  // namespace losa
