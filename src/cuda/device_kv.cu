#include "losa/cuda/device_kv.hpp"

#include "losa/errors.hpp"

namespace losa::cuda {

DevicePagedKV::DevicePagedKV(const PagedKVConfig& config) : cache_(config, 1) { cache_.set_batch({0}); }

void DevicePagedKV::upload(const PagedKVCache& cpu, int seq) {
  LOSA_CHECK_ARG(seq >= 0 && seq < cpu.num_sequences(), "seq", "must be in [0, ", cpu.num_sequences(), "), got ", seq);
  cache_.set_batch({});  // adopt the CPU cache's page tables
  cache_.upload(cpu, 0);
  seq_ = seq;
}

void DevicePagedKV::append(const void* k, const void* v, int num_tokens, Stream stream) {
  LOSA_CHECK_ARG(num_tokens >= 0, "num_tokens", "must be >= 0, got ", num_tokens);
  if (num_tokens == 0) return;
  LOSA_CHECK_ARG(k != nullptr && v != nullptr, "k/v", "must not be null");
  cache_.reserve(seq_, cache_.kv_len(seq_) + num_tokens, stream);
  cache_.append(0, seq_, 1, TokenTensor{k, 0}, TokenTensor{v, 0}, num_tokens, stream);
  cache_.advance(seq_, 1, num_tokens, stream);
}

std::vector<int32_t> DevicePagedKV::page_table_host() const {
  std::vector<int32_t> table = cache_.page_table(seq_);
  table.resize(num_pages());
  return table;
}

}  // namespace losa::cuda
