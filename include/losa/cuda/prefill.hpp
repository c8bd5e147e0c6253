#pragma once
// Block-causal attention of a prompt chunk over the paged cache, for the prefill (DESIGN.md
// section 6): the same paged-attention kernel as a decoding step, in its many-rows mode.
//
// The chunk's K/V must already be appended to the cache at each sequence's kv_len (lengths not
// advanced yet); chunk token t then attends to every key before
//   kv_len + (t / block_size + 1) * block_size
// (the prompt's earlier blocks, and its own block bidirectionally). The splits' partial states
// are merged into o. Plans once for the largest chunk; run() only enqueues.
#include <cstdint>

#include "losa/cuda/device_buffer.hpp"
#include "losa/cuda/kv_cache.hpp"

namespace losa::cuda {

class PrefillAttention {
 public:
  /// Throws ArgumentError naming a bad argument.
  PrefillAttention(const PagedKVConfig& kv_config, int num_q_heads, int max_chunk_tokens, int max_pages_per_seq,
                   float softmax_scale = 0.0f);

  /// q: [num_seqs * chunk_tokens, Hq, D] token-major (strided), o: written likewise. kv: the
  /// chunk's sequences (num_seqs of them, each with chunk_tokens appended beyond kv_len).
  void run(const KVBatchView& kv, int chunk_tokens, int block_size, TokenTensor q, void* o, int64_t o_stride,
           Stream stream = nullptr);

  size_t workspace_bytes() const { return workspace_.bytes(); }

 private:
  PagedKVConfig kv_;
  int num_q_heads_, max_chunk_, max_pages_, num_splits_ = 1;
  float scale_;
  DeviceBuffer workspace_;  // partial o [Hk, splits, chunk * group, D] and lse, per sequence run
};

}  // namespace losa::cuda
