// The prefill's block-causal attention: the paged-attention kernel over every prefix page up
// to each row's limit (many rows per sequence), then the split merge without a block part.
#include <algorithm>

#include "batch_view.hpp"
#include "common.cuh"
#include "dispatch.cuh"
#include "launchers.hpp"
#include "losa/cuda/prefill.hpp"

namespace losa::cuda {

PrefillAttention::PrefillAttention(const PagedKVConfig& kv_config, int num_q_heads, int max_chunk_tokens,
                                   int max_pages_per_seq, float softmax_scale)
    : kv_(kv_config), num_q_heads_(num_q_heads), max_chunk_(max_chunk_tokens), max_pages_(max_pages_per_seq) {
  validate(kv_config);
  check_dispatch(kv_config.dtype, kv_config.head_dim);
  LOSA_CHECK_ARG(num_q_heads > 0 && num_q_heads % kv_config.num_kv_heads == 0, "num_q_heads",
                 "must be a positive multiple of num_kv_heads=", kv_config.num_kv_heads, ", got ", num_q_heads);
  LOSA_CHECK_ARG(max_chunk_tokens >= 1, "max_chunk_tokens", "must be >= 1, got ", max_chunk_tokens);
  LOSA_CHECK_ARG(max_pages_per_seq >= 1 && max_pages_per_seq <= kv_config.max_pages, "max_pages_per_seq",
                 "must be in [1, max_pages=", kv_config.max_pages, "], got ", max_pages_per_seq);
  LOSA_CHECK_ARG(softmax_scale >= 0.0f, "softmax_scale", "must be >= 0 (0: 1/sqrt(head_dim))");
  scale_ = softmax_scale > 0.0f ? softmax_scale : 1.0f / std::sqrt(static_cast<float>(kv_config.head_dim));
  const int group = num_q_heads / kv_config.num_kv_heads;
  const int rows = max_chunk_tokens * group;
  // A chunk of many rows fills the GPU by its row tiles; short chunks split the page list.
  num_splits_ = std::min(16, choose_num_splits(kv_config.num_kv_heads * ceil_div(rows, attention_rows_per_cta(rows)),
                                               ceil_div(max_pages_per_seq, 64 / kv_config.page_size),
                                               attention_resident_ctas(kv_config.dtype, kv_config.head_dim, rows)));
  const size_t partial_rows = static_cast<size_t>(kv_config.num_kv_heads) * num_splits_ * rows;
  workspace_ = DeviceBuffer(partial_rows * (kv_config.head_dim + 1) * sizeof(float));
}

void PrefillAttention::run(const KVBatchView& kv, int chunk_tokens, int block_size, TokenTensor q, void* o,
                           int64_t o_stride, Stream stream) {
  const int Hk = kv_.num_kv_heads, D = kv_.head_dim, group = num_q_heads_ / Hk;
  LOSA_CHECK_ARG(kv.config.num_kv_heads == Hk && kv.config.head_dim == D && kv.config.dtype == kv_.dtype &&
                     kv.config.page_size == kv_.page_size,
                 "kv", "has a different config than the prefill was made for");
  LOSA_CHECK_ARG(kv.num_seqs == 1, "kv", "must view one sequence (a prefill runs one prompt at a time), got ",
                 kv.num_seqs);
  LOSA_CHECK_ARG(kv.max_reserved_pages <= max_pages_, "kv", "reserves ", kv.max_reserved_pages,
                 " pages, more than max_pages_per_seq=", max_pages_);
  LOSA_CHECK_ARG(chunk_tokens >= 1 && chunk_tokens <= max_chunk_, "chunk_tokens", "must be in [1, ", max_chunk_,
                 "], got ", chunk_tokens);
  LOSA_CHECK_ARG(block_size >= 1 && chunk_tokens % block_size == 0, "block_size",
                 "must divide chunk_tokens=", chunk_tokens, ", got ", block_size);
  const int64_t q_row = static_cast<int64_t>(num_q_heads_) * D;
  const TokenRows qr{q.data, q.stride ? q.stride : q_row};
  const MutableTokenRows out{o, o_stride ? o_stride : q_row};
  LOSA_CHECK_ARG(qr.data && out.data, "q/o", "must not be null");
  LOSA_CHECK_ARG(qr.stride >= q_row && out.stride >= q_row, "q/o stride", "must be >= Hq * D = ", q_row);
  const int rows = chunk_tokens * group;
  float* partial_o = workspace_.as<float>();
  float* partial_lse = partial_o + static_cast<size_t>(Hk) * num_splits_ * rows * D;

  PagedAttentionParams pa;
  pa.kv = kernel_view(kv, false);
  pa.active.block_size = chunk_tokens;  // every chunk token is a row (tokens == nullptr)
  pa.q = qr;
  pa.num_q_heads = num_q_heads_;
  pa.group = group;
  pa.max_rows = rows;
  pa.scale_log2 = scale_ * kLog2e;
  pa.num_splits = num_splits_;
  pa.partial_o = partial_o;
  pa.partial_lse = partial_lse;
  pa.causal_block = block_size;
  launch_paged_attention(kv_.dtype, D, pa, 1, stream);

  FinalizeParams fp;
  fp.q = qr;
  fp.active.block_size = chunk_tokens;
  fp.kv_len = kv.kv_len;
  fp.page_size = kv_.page_size;
  fp.partial_o = partial_o;
  fp.partial_lse = partial_lse;
  fp.num_splits = num_splits_;
  fp.max_rows = rows;
  fp.o = out;
  fp.block_size = chunk_tokens;
  fp.num_q_heads = num_q_heads_;
  fp.num_kv_heads = Hk;
  fp.scale = scale_;
  fp.block_part = false;
  launch_finalize(kv_.dtype, D, fp, 1, stream);
}

}  // namespace losa::cuda
