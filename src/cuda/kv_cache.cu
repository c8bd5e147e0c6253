#include <algorithm>
#include <limits>
#include <numeric>

#include "common.cuh"
#include "dispatch.cuh"
#include "launchers.hpp"
#include "losa/cuda/kv_cache.hpp"

namespace losa::cuda {

namespace {
int64_t checked_product(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (f != 0 && product > std::numeric_limits<int64_t>::max() / f)
      throw ArgumentError("DeviceKVCache", "config", "size overflows 64 bits");
    product *= f;
  }
  return product;
}
}  // namespace

int64_t DeviceKVCache::bytes_needed(const PagedKVConfig& c, int num_layers) {
  const int64_t elem = dtype_bytes(c.dtype);
  const int64_t kv = checked_product({2, num_layers, c.max_pages, c.num_kv_heads, c.page_size, c.head_dim, elem});
  const int64_t bounds = checked_product({2, num_layers, c.max_pages, c.num_kv_heads, c.head_dim, elem});
  const int64_t b8 = c.keep_bounds8 ? checked_product({num_layers, c.max_pages, c.num_kv_heads, 2 * c.head_dim + 4}) : 0;
  return kv + bounds + b8;
}

DeviceKVCache::DeviceKVCache(const PagedKVConfig& config, int num_layers)
    : config_(config), num_layers_(num_layers) {
  validate(config_);
  check_dispatch(config_.dtype, config_.head_dim);
  LOSA_CHECK_ARG(num_layers >= 1, "num_layers", "must be >= 1, got ", num_layers);
  bytes_needed(config_, num_layers);  // throws on overflow before allocating
  const size_t layers = static_cast<size_t>(num_layers);
  keys_ = DeviceBuffer(layers * layer_kv_bytes());
  values_ = DeviceBuffer(keys_.bytes());
  key_min_ = DeviceBuffer(layers * layer_bounds_bytes());
  key_max_ = DeviceBuffer(key_min_.bytes());
  // Zeros in unused slots: masked tokens are never read as data, but no slot holds garbage.
  keys_.fill_bytes(0);
  values_.fill_bytes(0);
  key_min_.fill_bytes(0);
  key_max_.fill_bytes(0);
  if (config_.keep_bounds8) {
    const size_t heads = layers * config_.max_pages * config_.num_kv_heads;
    bounds8_ = DeviceBuffer(heads * 2 * config_.head_dim);
    bound_scale_ = DeviceBuffer(heads * sizeof(float));
    bounds8_.fill_bytes(0);
    bound_scale_.fill_bytes(0);
  }
  set_batch({}, nullptr);
}

size_t DeviceKVCache::layer_kv_bytes() const {
  return static_cast<size_t>(config_.max_pages) * config_.num_kv_heads * config_.page_size * config_.head_dim *
         dtype_bytes(config_.dtype);
}
size_t DeviceKVCache::layer_bounds_bytes() const {
  return static_cast<size_t>(config_.max_pages) * config_.num_kv_heads * config_.head_dim * dtype_bytes(config_.dtype);
}

void DeviceKVCache::upload_table(Stream stream) {
  const size_t n = std::max<size_t>(indices_.size(), 1);
  if (indices_dev_.bytes() < n * 4) indices_dev_ = DeviceBuffer(n * 4);
  if (indptr_dev_.bytes() < indptr_.size() * 4) indptr_dev_ = DeviceBuffer(indptr_.size() * 4);
  const size_t seqs = std::max<size_t>(kv_len_.size(), 1);
  if (kv_len_dev_.bytes() < seqs * 4) kv_len_dev_ = DeviceBuffer(seqs * 4);
  std::vector<int32_t> lens(kv_len_.begin(), kv_len_.end());
  // Ordered on the caller's stream before any kernel that reads the table; the host vectors are
  // pageable, so the copies return once the data is staged.
  LOSA_CUDA_CHECK(cudaMemcpyAsync(indptr_dev_.data(), indptr_.data(), indptr_.size() * 4, cudaMemcpyHostToDevice, stream));
  if (!indices_.empty())
    LOSA_CUDA_CHECK(cudaMemcpyAsync(indices_dev_.data(), indices_.data(), indices_.size() * 4, cudaMemcpyHostToDevice, stream));
  if (!lens.empty())
    LOSA_CUDA_CHECK(cudaMemcpyAsync(kv_len_dev_.data(), lens.data(), lens.size() * 4, cudaMemcpyHostToDevice, stream));
  LOSA_CUDA_CHECK(cudaStreamSynchronize(stream));  // the staging vectors die here
  ++version_;
}

void DeviceKVCache::set_batch(const std::vector<int64_t>& capacity_tokens, Stream stream) {
  const int P = config_.page_size;
  int64_t pages_needed = 0;
  for (size_t s = 0; s < capacity_tokens.size(); ++s) {
    LOSA_CHECK_ARG(capacity_tokens[s] >= 0 && capacity_tokens[s] <= std::numeric_limits<int32_t>::max(),
                   "capacity_tokens", "[", s, "] must be in [0, 2^31), got ", capacity_tokens[s]);
    pages_needed += (capacity_tokens[s] + P - 1) / P;
  }
  LOSA_CHECK_ARG(pages_needed <= config_.max_pages, "capacity_tokens", "needs ", pages_needed,
                 " pages but the pool has ", config_.max_pages, " (config.max_pages)");
  free_.clear();
  for (int p = config_.max_pages - 1; p >= 0; --p) free_.push_back(p);
  indptr_.assign(1, 0);
  indices_.clear();
  kv_len_.assign(capacity_tokens.size(), 0);
  for (int64_t cap : capacity_tokens) {
    for (int64_t i = 0; i < (cap + P - 1) / P; ++i) {
      indices_.push_back(free_.back());
      free_.pop_back();
    }
    indptr_.push_back(static_cast<int32_t>(indices_.size()));
  }
  upload_table(stream);
}

void DeviceKVCache::reserve(int seq, int64_t capacity_tokens, Stream stream) {
  check_seq_range(seq, 1, "DeviceKVCache::reserve");
  LOSA_CHECK_ARG(capacity_tokens >= 0 && capacity_tokens <= std::numeric_limits<int32_t>::max(), "capacity_tokens",
                 "must be in [0, 2^31), got ", capacity_tokens);
  const int P = config_.page_size;
  const int64_t more = (capacity_tokens + P - 1) / P - reserved_pages(seq);
  if (more <= 0) return;
  LOSA_CHECK_ARG(more <= static_cast<int64_t>(free_.size()), "capacity_tokens", "needs ", more,
                 " more pages but only ", free_.size(), " are free (config.max_pages=", config_.max_pages, ")");
  std::vector<int32_t> added;
  for (int64_t i = 0; i < more; ++i) {
    added.push_back(free_.back());
    free_.pop_back();
  }
  indices_.insert(indices_.begin() + indptr_[seq + 1], added.begin(), added.end());
  for (size_t s = seq + 1; s < indptr_.size(); ++s) indptr_[s] += static_cast<int32_t>(more);
  upload_table(stream);
}

void DeviceKVCache::upload(const PagedKVCache& cpu, int layer, int64_t extra_tokens, Stream stream) {
  const PagedKVConfig& c = cpu.config();
  LOSA_CHECK_ARG(c.num_kv_heads == config_.num_kv_heads && c.head_dim == config_.head_dim &&
                     c.page_size == config_.page_size && c.dtype == config_.dtype && c.max_pages == config_.max_pages && c.keep_bounds8 == config_.keep_bounds8,
                 "cpu", "has a different config (heads, head dim, page size, dtype, max_pages, keep_bounds8)");
  LOSA_CHECK_ARG(layer >= 0 && layer < num_layers_, "layer", "must be in [0, ", num_layers_, "), got ", layer);
  LOSA_CHECK_ARG(extra_tokens >= 0, "extra_tokens", "must be >= 0, got ", extra_tokens);
  const int S = cpu.num_sequences(), P = config_.page_size;
  const bool adopt = indptr_.size() != static_cast<size_t>(S) + 1 ||
                     std::all_of(kv_len_.begin(), kv_len_.end(), [](int64_t l) { return l == 0; });
  if (adopt) {
    std::vector<bool> used(config_.max_pages, false);
    for (int32_t p : cpu.indices()) used[p] = true;
    std::vector<int32_t> free;
    for (int p = config_.max_pages - 1; p >= 0; --p)
      if (!used[p]) free.push_back(p);
    std::vector<int32_t> indptr(1, 0), indices;
    for (int s = 0; s < S; ++s) {
      const int n = cpu.num_pages(s);
      const int64_t room = static_cast<int64_t>(n) * P - cpu.kv_len(s);
      const int64_t extra_pages = (std::max<int64_t>(0, extra_tokens - room) + P - 1) / P;
      LOSA_CHECK_ARG(extra_pages <= static_cast<int64_t>(free.size()), "extra_tokens", "needs ", extra_pages,
                     " more pages for sequence ", s, " but only ", free.size(), " are free");
      for (int i = 0; i < n; ++i) indices.push_back(cpu.page_id(s, i));
      for (int64_t i = 0; i < extra_pages; ++i) {
        indices.push_back(free.back());
        free.pop_back();
      }
      indptr.push_back(static_cast<int32_t>(indices.size()));
    }
    indptr_ = std::move(indptr);
    indices_ = std::move(indices);
    free_ = std::move(free);
    kv_len_.assign(S, 0);
    for (int s = 0; s < S; ++s) kv_len_[s] = cpu.kv_len(s);
    upload_table(stream);
  } else {
    for (int s = 0; s < S; ++s) {
      LOSA_CHECK_ARG(cpu.kv_len(s) == kv_len_[s], "cpu", "sequence ", s, " has ", cpu.kv_len(s),
                     " tokens but the device cache has ", kv_len_[s]);
      for (int i = 0; i < cpu.num_pages(s); ++i)
        LOSA_CHECK_ARG(cpu.page_id(s, i) == indices_[indptr_[s] + i], "cpu",
                       "has another page table than the layers uploaded before");
    }
  }
  const size_t kv_off = layer * layer_kv_bytes(), b_off = layer * layer_bounds_bytes();
  auto h2d = [&](const DeviceBuffer& dst, size_t off, const void* src, size_t bytes) {
    LOSA_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst.data()) + off, src, bytes, cudaMemcpyHostToDevice, stream));
  };
  h2d(keys_, kv_off, cpu.keys_data(), cpu.page_pool_bytes());
  h2d(values_, kv_off, cpu.values_data(), cpu.page_pool_bytes());
  h2d(key_min_, b_off, cpu.key_min_data(), cpu.bounds_bytes());
  h2d(key_max_, b_off, cpu.key_max_data(), cpu.bounds_bytes());
  if (config_.keep_bounds8) {
    const size_t heads = static_cast<size_t>(config_.max_pages) * config_.num_kv_heads;
    h2d(bounds8_, layer * heads * 2 * config_.head_dim, cpu.bounds8_data(), heads * 2 * config_.head_dim);
    h2d(bound_scale_, layer * heads * sizeof(float), cpu.bound_scale_data(), heads * sizeof(float));
  }
  LOSA_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void DeviceKVCache::check_seq_range(int first_seq, int num_seqs, const char* function) const {
  if (first_seq < 0 || num_seqs < 0 || first_seq + num_seqs > this->num_seqs())
    throw ArgumentError(function, "first_seq/num_seqs",
                        "range [" + std::to_string(first_seq) + ", " + std::to_string(first_seq + num_seqs) +
                            ") is outside the batch of " + std::to_string(this->num_seqs()) + " sequences");
}

void DeviceKVCache::append(int layer, int first_seq, int num_seqs, TokenTensor k, TokenTensor v, int num_tokens,
                           Stream stream, const uint8_t* seq_mask) {
  check_seq_range(first_seq, num_seqs, "DeviceKVCache::append");
  LOSA_CHECK_ARG(layer >= 0 && layer < num_layers_, "layer", "must be in [0, ", num_layers_, "), got ", layer);
  LOSA_CHECK_ARG(num_tokens >= 0, "num_tokens", "must be >= 0, got ", num_tokens);
  if (num_tokens == 0 || num_seqs == 0) return;
  LOSA_CHECK_ARG(k.data && v.data, "k/v", "must not be null");
  const int64_t row = static_cast<int64_t>(config_.num_kv_heads) * config_.head_dim;
  const int64_t k_stride = k.stride ? k.stride : row, v_stride = v.stride ? v.stride : row;
  LOSA_CHECK_ARG(k_stride >= row && v_stride >= row, "k/v stride", "must be >= Hk * D = ", row);
  LOSA_CHECK_ARG(is_aligned(k.data, 16) && is_aligned(v.data, 16) &&
                     (k_stride * dtype_bytes(config_.dtype)) % 16 == 0 && (v_stride * dtype_bytes(config_.dtype)) % 16 == 0,
                 "k/v", "must be 16-byte aligned, rows too");
  for (int s = first_seq; s < first_seq + num_seqs; ++s)
    LOSA_CHECK_ARG(kv_len_[s] + num_tokens <= capacity_tokens(s), "num_tokens", "sequence ", s, " holds ",
                   kv_len_[s], " of ", capacity_tokens(s), " reserved tokens: no room for ", num_tokens, " more");
  AppendParams p;
  const size_t kv_off = layer * layer_kv_bytes(), b_off = layer * layer_bounds_bytes();
  p.keys = static_cast<char*>(keys_.data()) + kv_off;
  p.values = static_cast<char*>(values_.data()) + kv_off;
  p.key_min = static_cast<char*>(key_min_.data()) + b_off;
  p.key_max = static_cast<char*>(key_max_.data()) + b_off;
  if (config_.keep_bounds8) {
    p.bounds8 = const_cast<int8_t*>(bounds8(layer));
    p.bound_scale = const_cast<float*>(bound_scale(layer));
  }
  p.page_indptr = indptr_dev_.as<int32_t>() + first_seq;
  p.page_indices = indices_dev_.as<int32_t>();
  p.kv_len = kv_len_dev_.as<int32_t>() + first_seq;
  p.num_seqs = num_seqs;
  p.num_tokens = num_tokens;
  p.k = TokenRows{k.data, k_stride};
  p.v = TokenRows{v.data, v_stride};
  p.num_kv_heads = config_.num_kv_heads;
  p.page_size = config_.page_size;
  p.seq_mask = seq_mask;
  launch_append(config_.dtype, config_.head_dim, p, stream);
}

void DeviceKVCache::advance(int first_seq, int num_seqs, int num_tokens, Stream stream, const uint8_t* seq_mask,
                            const std::vector<uint8_t>* host_mask) {
  check_seq_range(first_seq, num_seqs, "DeviceKVCache::advance");
  LOSA_CHECK_ARG((seq_mask == nullptr) == (host_mask == nullptr), "seq_mask/host_mask",
                 "must be given together (the device mask and its host copy)");
  LOSA_CHECK_ARG(!host_mask || static_cast<int>(host_mask->size()) == num_seqs, "host_mask", "has ",
                 host_mask ? host_mask->size() : 0, " entries for ", num_seqs, " sequences");
  for (int s = first_seq; s < first_seq + num_seqs; ++s)
    if (!host_mask || (*host_mask)[s - first_seq])
    LOSA_CHECK_ARG(kv_len_[s] + num_tokens >= 0 && kv_len_[s] + num_tokens <= capacity_tokens(s), "num_tokens",
                   "sequence ", s, " would hold ", kv_len_[s] + num_tokens, " tokens, outside [0, ",
                   capacity_tokens(s), "] reserved");
  launch_advance_lengths(kv_len_dev_.as<int32_t>() + first_seq, num_seqs, num_tokens, seq_mask, stream);
  // Captured into a graph, the launch runs at each replay, not now: the caller mirrors replays.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  LOSA_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (capture == cudaStreamCaptureStatusNone) mirror_advance(first_seq, num_seqs, num_tokens, host_mask);
}

void DeviceKVCache::mirror_advance(int first_seq, int num_seqs, int num_tokens, const std::vector<uint8_t>* host_mask) {
  check_seq_range(first_seq, num_seqs, "DeviceKVCache::mirror_advance");
  for (int s = first_seq; s < first_seq + num_seqs; ++s)
    if (!host_mask || (*host_mask)[s - first_seq]) kv_len_[s] += num_tokens;
  ++version_;
}

KVBatchView DeviceKVCache::view(int layer, int first_seq, int num_seqs) const {
  if (num_seqs < 0) num_seqs = this->num_seqs() - first_seq;
  check_seq_range(first_seq, num_seqs, "DeviceKVCache::view");
  LOSA_CHECK_ARG(layer >= 0 && layer < num_layers_, "layer", "must be in [0, ", num_layers_, "), got ", layer);
  KVBatchView v;
  v.config = config_;
  v.keys = keys(layer);
  v.values = values(layer);
  v.key_min = key_min(layer);
  v.key_max = key_max(layer);
  v.bounds8 = bounds8(layer);
  v.bound_scale = bound_scale(layer);
  v.page_indptr = indptr_dev_.as<int32_t>() + first_seq;
  v.page_indices = indices_dev_.as<int32_t>();
  v.kv_len = kv_len_dev_.as<int32_t>() + first_seq;
  v.num_seqs = num_seqs;
  for (int s = first_seq; s < first_seq + num_seqs; ++s) v.max_reserved_pages = std::max(v.max_reserved_pages, reserved_pages(s));
  v.version = version_;
  return v;
}

int64_t DeviceKVCache::kv_len(int seq) const {
  check_seq_range(seq, 1, "DeviceKVCache::kv_len");
  return kv_len_[seq];
}
int DeviceKVCache::reserved_pages(int seq) const {
  check_seq_range(seq, 1, "DeviceKVCache::reserved_pages");
  return indptr_[seq + 1] - indptr_[seq];
}
int64_t DeviceKVCache::capacity_tokens(int seq) const {
  return static_cast<int64_t>(reserved_pages(seq)) * config_.page_size;
}
std::vector<int32_t> DeviceKVCache::page_table(int seq) const {
  check_seq_range(seq, 1, "DeviceKVCache::page_table");
  return std::vector<int32_t>(indices_.begin() + indptr_[seq], indices_.begin() + indptr_[seq + 1]);
}
int64_t DeviceKVCache::bytes() const {
  return static_cast<int64_t>(keys_.bytes() + values_.bytes() + key_min_.bytes() + key_max_.bytes() +
                              bounds8_.bytes() + bound_scale_.bytes());
}

const void* DeviceKVCache::keys(int layer) const { return static_cast<const char*>(keys_.data()) + layer * layer_kv_bytes(); }
const void* DeviceKVCache::values(int layer) const { return static_cast<const char*>(values_.data()) + layer * layer_kv_bytes(); }
const void* DeviceKVCache::key_min(int layer) const { return static_cast<const char*>(key_min_.data()) + layer * layer_bounds_bytes(); }
const void* DeviceKVCache::key_max(int layer) const { return static_cast<const char*>(key_max_.data()) + layer * layer_bounds_bytes(); }
const int8_t* DeviceKVCache::bounds8(int layer) const {
  if (!config_.keep_bounds8) return nullptr;
  return bounds8_.as<int8_t>() + static_cast<size_t>(layer) * config_.max_pages * config_.num_kv_heads * 2 * config_.head_dim;
}
const float* DeviceKVCache::bound_scale(int layer) const {
  if (!config_.keep_bounds8) return nullptr;
  return bound_scale_.as<float>() + static_cast<size_t>(layer) * config_.max_pages * config_.num_kv_heads;
}

}  // namespace losa::cuda
