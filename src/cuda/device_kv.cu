#include <algorithm>

#include "common.cuh"
#include "dispatch.cuh"
#include "launchers.hpp"
#include "losa/cuda/device_kv.hpp"

namespace losa::cuda {

DevicePagedKV::DevicePagedKV(const PagedKVConfig& config) : config_(config) {
  validate(config_);
  check_dispatch(config_.dtype, config_.head_dim);
  const size_t elem = dtype_bytes(config_.dtype);
  const size_t per_page = static_cast<size_t>(config_.num_kv_heads) * config_.head_dim * elem;
  keys_ = DeviceBuffer(config_.max_pages * per_page * config_.page_size);
  values_ = DeviceBuffer(keys_.bytes());
  key_min_ = DeviceBuffer(config_.max_pages * per_page);
  key_max_ = DeviceBuffer(key_min_.bytes());
  page_table_ = DeviceBuffer(config_.max_pages * sizeof(int32_t));
  // Zeros in unused slots: masked tokens are never read as data, but no slot holds garbage.
  keys_.fill_bytes(0);
  values_.fill_bytes(0);
  key_min_.fill_bytes(0);
  key_max_.fill_bytes(0);
  for (int p = config_.max_pages - 1; p >= 0; --p) free_pages_.push_back(p);
}

void DevicePagedKV::upload(const PagedKVCache& cpu, int seq) {
  const PagedKVConfig& c = cpu.config();
  LOSA_CHECK_ARG(c.num_kv_heads == config_.num_kv_heads && c.head_dim == config_.head_dim &&
                     c.page_size == config_.page_size && c.dtype == config_.dtype &&
                     c.max_pages == config_.max_pages,
                 "cpu", "has a different config (heads, head dim, page size, dtype, max_pages)");
  const int n = cpu.num_pages(seq);  // validates seq
  keys_.upload(cpu.keys_data(), cpu.page_pool_bytes());
  values_.upload(cpu.values_data(), cpu.page_pool_bytes());
  key_min_.upload(cpu.key_min_data(), cpu.bounds_bytes());
  key_max_.upload(cpu.key_max_data(), cpu.bounds_bytes());
  pages_.assign(cpu.indices().begin() + cpu.indptr()[seq], cpu.indices().begin() + cpu.indptr()[seq] + n);
  page_table_.upload(pages_.data(), pages_.size() * sizeof(int32_t));
  kv_len_ = cpu.kv_len(seq);
  std::vector<bool> used(config_.max_pages, false);
  for (int p : pages_) used[p] = true;
  free_pages_.clear();
  for (int p = config_.max_pages - 1; p >= 0; --p)
    if (!used[p]) free_pages_.push_back(p);
}

void DevicePagedKV::append(const void* k, const void* v, int num_tokens, Stream stream) {
  LOSA_CHECK_ARG(num_tokens >= 0, "num_tokens", "must be >= 0, got ", num_tokens);
  if (num_tokens == 0) return;
  LOSA_CHECK_ARG(k != nullptr && v != nullptr, "k/v", "must not be null");
  const int P = config_.page_size;
  const int room = pages_.empty() ? 0 : num_pages() * P - kv_len_;
  const int new_pages = ceil_div(std::max(0, num_tokens - room), P);
  LOSA_CHECK_ARG(new_pages <= static_cast<int>(free_pages_.size()), "num_tokens", "needs ",
                 new_pages, " new pages but only ", free_pages_.size(), " are free");
  const int first_new = num_pages();
  for (int i = 0; i < new_pages; ++i) {
    pages_.push_back(free_pages_.back());
    free_pages_.pop_back();
  }
  if (new_pages > 0)
    page_table_.upload(pages_.data() + first_new, new_pages * sizeof(int32_t), first_new * sizeof(int32_t));
  AppendParams p;
  p.keys = keys_.data();
  p.values = values_.data();
  p.key_min = key_min_.data();
  p.key_max = key_max_.data();
  p.page_table = page_table();
  p.start = kv_len_;
  p.num_tokens = num_tokens;
  p.k = k;
  p.v = v;
  p.num_kv_heads = config_.num_kv_heads;
  p.page_size = P;
  launch_append(config_.dtype, config_.head_dim, p, stream);
  kv_len_ += num_tokens;
}

}  // namespace losa::cuda
