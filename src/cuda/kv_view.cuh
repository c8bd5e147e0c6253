#pragma once
// Device-side reading of a batch's page table: a sequence's prefix length comes from device
// memory, so the same launch serves every block of a decode.
#include "params.hpp"

namespace losa::cuda {

/// One sequence's prefix as a kernel sees it.
struct SeqPages {
  const int32_t* table;  ///< logical -> physical page
  int num_pages;         ///< pages holding prefix tokens
  int last_len;          ///< valid tokens of the last of them (0 when there is none)

  __device__ __forceinline__ int valid_tokens(int logical, int page_size) const {
    return logical == num_pages - 1 ? last_len : page_size;
  }
};

__device__ __forceinline__ SeqPages seq_pages(const PagedKVView& kv, int seq) {
  const int len = kv.kv_len[seq];
  const int n = (len + kv.page_size - 1) / kv.page_size;
  return SeqPages{kv.page_indices + kv.page_indptr[seq], n, len - (n > 0 ? n - 1 : 0) * kv.page_size};
}

/// Element offset of (physical page, KV head)'s [P, D] block in keys/values.
__device__ __forceinline__ size_t page_block_offset(int phys, int kv_head, int num_kv_heads, int page_size,
                                                    int head_dim) {
  return (static_cast<size_t>(phys) * num_kv_heads + kv_head) * page_size * head_dim;
}

/// A sequence's active tokens: the active set's count, or every token on a full step (none for a
/// sequence sitting out).
__device__ __forceinline__ int active_token_count(const ActiveSetView& active, int seq) {
  if (active.tokens) return active.count[seq];
  return active.seq_mask && !active.seq_mask[seq] ? 0 : active.block_size;
}

/// Rows of a packed (sequence, KV head): active tokens times the group.
__device__ __forceinline__ int packed_rows(const ActiveSetView& active, int seq, int group) {
  return active_token_count(active, seq) * group;
}

/// The block token of row `r` of a packed (sequence, KV head).
__device__ __forceinline__ int packed_row_token(const ActiveSetView& active, int seq, int group, int r) {
  return active.tokens ? active.tokens[seq * active.block_size + r / group] : r / group;
}

/// Where row `r`'s split partial state goes: the token's row (token * group + head in group), so
/// that the merge finds a token's state without reading the active set first.
__device__ __forceinline__ int partial_state_row(const ActiveSetView& active, int seq, int group, int r) {
  return packed_row_token(active, seq, group, r) * group + r % group;
}

/// Index of a split's partial state in the [S * Hk, splits, max_rows] arrays, at the token's
/// row (partial_state_row): the attention kernel writes it, the finalize kernel merges it.
__device__ __forceinline__ size_t partial_state_index(int head_slot, int num_splits, int split, int max_rows,
                                                      int state_row) {
  return (static_cast<size_t>(head_slot) * num_splits + split) * max_rows + state_row;
}

/// Row `r` of a packed (sequence, KV head): its active token and query head.
__device__ __forceinline__ const void* packed_query_row(const TokenRows& q, const ActiveSetView& active, int seq,
                                                        int kv_head, int group, int num_q_heads, int head_dim,
                                                        int r, int elem_bytes) {
  const int token = packed_row_token(active, seq, group, r);
  const int head = kv_head * group + r % group;
  const int64_t row = static_cast<int64_t>(seq) * active.block_size + token;
  return static_cast<const char*>(q.data) + (row * q.stride + static_cast<int64_t>(head) * head_dim) * elem_bytes;
}

}  // namespace losa::cuda
