#pragma once
// Parameter structs of the CUDA kernels: plain data, filled by the engine, passed by value as
// __grid_constant__ kernel arguments. Pointers are device pointers.
//
// Batching: every kernel serves a batch of S sequences with the same block size B. Grids carry
// the sequence in their outermost dimension (blockIdx.z or .y = seq * Hk + kv_head, or
// seq * B + token). Lengths live on the device (PagedKVView::kv_len), so one launch serves block
// after block without re-capture.
//
// Row packing (one KV page load serves every row of its KV head): for sequence s and KV head h
// the rows are r = a * group + g for the a-th active token of s and the g-th query head of the
// group, a < count[s].
#include <cstdint>

namespace losa::cuda {

/// Rows of one CTA of the row-packed kernels (attention, QUEST scores, SparseD mass): four warps
/// of 16 rows, the block size 16 times a GQA group of 4.
constexpr int kRowsPerCta = 64;

/// One layer's page pool (HND layout, see losa/paged_kv.hpp) and the page table of a batch.
/// Sequence s owns the reserved pages page_indices[page_indptr[s] .. page_indptr[s + 1]) in
/// logical order (FlashInfer's CSR layout, over reserved rather than used pages); its first
/// kv_len[s] tokens are the prefix, so it uses ceil(kv_len / P) pages, the last holding
/// kv_len - (pages - 1) * P tokens.
struct PagedKVView {
  const void* keys = nullptr;     ///< [max_pages, Hk, P, D]
  const void* values = nullptr;   ///< [max_pages, Hk, P, D]
  const void* key_min = nullptr;  ///< [max_pages, Hk, D]
  const void* key_max = nullptr;  ///< [max_pages, Hk, D]
  /// 8-bit bounds (nullable): [max_pages, Hk, 2, D] int8 (min rounded down, then max rounded
  /// up, in units of bound_scale) and bound_scale [max_pages, Hk] fp32.
  const int8_t* bounds8 = nullptr;
  const float* bound_scale = nullptr;
  const int32_t* page_indptr = nullptr;   ///< [S + 1]
  const int32_t* page_indices = nullptr;  ///< [page_indptr[S]] physical pages
  const int32_t* kv_len = nullptr;        ///< [S]
  int num_kv_heads = 0;
  int page_size = 16;
};

/// A token-major tensor: token t's heads are contiguous at data + t * stride (elements), so q,
/// k and v may be slices of one fused QKV output.
struct TokenRows {
  const void* data = nullptr;
  int64_t stride = 0;
};
struct MutableTokenRows {
  void* data = nullptr;
  int64_t stride = 0;
};

/// Each sequence's active tokens: the rows a step recomputes. With tokens == nullptr every one
/// of the block_size tokens is active, in order (prefill).
struct ActiveSetView {
  const int32_t* tokens = nullptr;      ///< [S, B] active tokens, ascending, first count[s]
  const int32_t* count = nullptr;       ///< [S]
  const int32_t* token_slot = nullptr;  ///< [S, B] position in tokens, or -1
  int block_size = 0;
  /// A full step (tokens, count and token_slot null: every token active, no active-set launch):
  /// [S] zero for a sequence sitting out, which then has no active token (nullable).
  const uint8_t* seq_mask = nullptr;
};

/// Pages each (sequence, KV head) loads: compacted logical pages, or every page.
struct PageListView {
  const int32_t* pages = nullptr;   ///< [S, Hk, list_stride] logical pages; null: every page
  const int32_t* phys = nullptr;    ///< [S, Hk, list_stride] their physical pages
  const int32_t* counts = nullptr;  ///< [S, Hk]
  int list_stride = 0;
};

/// attend=own: per row a bitmap over logical pages; null for attend=union / dense.
struct RowMaskView {
  const uint32_t* bits = nullptr;  ///< [S, Hk, rows_per_kv_head, words]
  int words = 0;                   ///< ceil(max_pages / 32)
  int rows_per_kv_head = 0;
  bool by_head_only = false;  ///< SparseD: the mask row is the head g, whatever the token
};

struct PagedAttentionParams {
  PagedKVView kv;
  ActiveSetView active;
  PageListView list;
  RowMaskView mask;
  TokenRows q;              ///< [S * B tokens, Hq, D]
  int num_q_heads = 0;
  int group = 0;            ///< Hq / Hk
  int max_rows = 0;         ///< rows per (sequence, KV head) at most: block_size * group
  float scale_log2 = 0.0f;  ///< softmax scale * log2(e)
  int num_splits = 1;
  /// Splits the partial layout holds (0: num_splits); losa_complement leaves one more for the
  /// complement kernel to write.
  int split_stride = 0;
  /// [S, Hk, split_stride, max_rows, D]; packed row r's state sits at its token's row
  /// token * group + r % group (max_rows = block_size * group), not at r.
  float* partial_o = nullptr;
  float* partial_lse = nullptr;  ///< [S, Hk, num_splits, max_rows], natural log
  /// Prefill (block-causal over many rows): > 0 when the rows are a chunk of block_size tokens
  /// whose K/V were appended at kv_len (lengths not yet advanced); chunk token t sees the keys
  /// before kv_len + (t / causal_block + 1) * causal_block. 0: the prefix [0, kv_len) for all.
  int causal_block = 0;
};

/// Change scores and the active set (LoSA), or every token active (full steps).
struct ActiveSetParams {
  TokenRows q;                  ///< [S * B, Hq, D]
  const void* q_ref = nullptr;  ///< [S, B, Hq, D]
  TokenRows k, v;               ///< [S * B, Hk, D] (with k_ref, v_ref: the combined QKV score)
  const void* k_ref = nullptr;  ///< [S, B, Hk, D]
  const void* v_ref = nullptr;
  int block_size = 0, num_q_heads = 0, num_kv_heads = 0;
  int rule = 0;  ///< 0: every token active, 1: top k_active, 2: tau, 3: delta_min
  int k_active = 0;
  double tau = 0.5;
  double delta_min = 0.01;
  double* delta = nullptr;        ///< [S, B] change scores (out)
  unsigned* ticket = nullptr;     ///< [S] zero before the first launch; the last CTA resets it
  int32_t* tokens = nullptr;      ///< [S, B] out
  int32_t* count = nullptr;       ///< [S] out
  int32_t* token_slot = nullptr;  ///< [S, B] out
  const uint8_t* seq_mask = nullptr;  ///< [S] zero: the sequence sits the step out (nullable)
};

/// QUEST upper bounds for the packed rows of each (sequence, KV head).
struct QuestScoreParams {
  PagedKVView kv;  ///< bounds8 set: score from the 8-bit bounds
  ActiveSetView active;
  TokenRows q;
  int num_q_heads = 0, group = 0, max_rows = 0;
  float* scores = nullptr;  ///< [S, Hk, max_rows, score_stride]
  int score_stride = 0;
};

/// Per-row top-k of scores and the union of the rows' choices per (sequence, KV head), compacted
/// into a page list by the last row's CTA: QUEST's rows (active tokens x group, the last page
/// kept) and SparseD's switch (the group's heads); per-row page bitmaps on request.
struct TopKParams {
  const float* scores = nullptr;  ///< [S, Hk, rows_per_kv_head, score_stride]
  int score_stride = 0;
  int rows_per_kv_head = 0;
  const int32_t* active_count = nullptr;  ///< [S] valid rows = count * group; null: all rows
  /// [S] zero: the sequence has no valid row (an empty union), as with an active count of 0 on a
  /// full step, where there is no count (nullable).
  const uint8_t* rows_mask = nullptr;
  int group = 0;
  PagedKVView kv;          ///< prefix lengths (pages = ceil(kv_len / page_size)) and page table
  bool keep_last = false;  ///< QUEST: the last page is always kept and not a candidate
  int k = 0;               ///< pages chosen among the candidates (select_fraction == 0)
  /// SparseD: k = max(1, ceil(select_fraction * pages)) per sequence, computed in double on the
  /// device exactly as the CPU reference does.
  double select_fraction = 0.0;
  uint8_t* union_flags = nullptr;  ///< [S, Hk, flag_stride] zero before; left zero after (16-byte aligned)
  int flag_stride = 0;             ///< a multiple of 16, >= max pages
  unsigned* union_ticket = nullptr;  ///< [S, Hk] zero before the first launch; the last CTA resets it
  int32_t* pages = nullptr;          ///< [S, Hk, list_stride] out: the union's logical pages, ascending
  int32_t* phys = nullptr;           ///< [S, Hk, list_stride] out: their physical pages
  int32_t* counts = nullptr;         ///< [S, Hk] out
  int list_stride = 0;
  uint32_t* row_bits = nullptr;    ///< [S, Hk, rows_per_kv_head, words] (nullable)
  int words = 0;
  const uint8_t* seq_mask = nullptr;  ///< [S] zero: skipped, its lists left as they are
};

/// Split merge, LoSA cache update, block part and final merge: one warp per (token, head).
struct FinalizeParams {
  TokenRows q;                  ///< [S * B, Hq, D]
  TokenRows k_blk, v_blk;       ///< [S * B, Hk, D]
  ActiveSetView active;         ///< tokens whose prefix part was computed this step
  const int32_t* kv_len = nullptr;  ///< [S]: an empty prefix has an empty prefix part
  int page_size = 0;
  const float* partial_o = nullptr;  ///< [S, Hk, num_splits, max_rows, D]
  const float* partial_lse = nullptr;
  int num_splits = 1, max_rows = 0;
  float* prefix_o = nullptr;    ///< [S, B, Hq, D] cached prefix state (LoSA; nullable)
  float* prefix_lse = nullptr;  ///< [S, B, Hq]
  void* q_ref = nullptr;        ///< [S, B, Hq, D] written for fresh tokens (nullable)
  void* k_ref = nullptr;        ///< [S, B, Hk, D] (nullable)
  void* v_ref = nullptr;
  MutableTokenRows o;           ///< [S * B, Hq, D] out
  float* lse = nullptr;         ///< [S, B, Hq] merged lse out (nullable)
  int block_size = 0, num_q_heads = 0, num_kv_heads = 0;
  float scale = 0.0f;
  // What the step loaded, per (sequence, KV head), for the caller's statistics (nullable).
  const int32_t* list_counts = nullptr;  ///< [S, Hk] pages loaded; null: every page or none
  bool loaded_every_page = false;
  int32_t* stats = nullptr;              ///< [S, 1 + Hk] out: active tokens, pages per KV head
  /// false (prefill): the splits' merge is the output; no block part, no cache update.
  bool block_part = true;
  const uint8_t* seq_mask = nullptr;  ///< [S] zero: nothing is written for the sequence
};

/// losa_complement: step 0's state less the step-0 query's part over the loaded pages, written
/// as split num_splits of the fresh pass's partial states (num_splits + 1 of them).
struct ComplementParams {
  ActiveSetView active;
  const float* anchor_partial_o = nullptr;    ///< [S, Hk, num_splits, max_rows, D]: the step-0 query's pass
  const float* anchor_partial_lse = nullptr;  ///< [S, Hk, num_splits, max_rows]
  int num_splits = 1, max_rows = 0;
  const float* anchor_o = nullptr;    ///< [S, B, Hq, D] step 0's prefix state
  const float* anchor_lse = nullptr;  ///< [S, B, Hq]
  float* partial_o = nullptr;         ///< [S, Hk, num_splits + 1, max_rows, D] (the last split written)
  float* partial_lse = nullptr;
  int num_seqs = 0, num_q_heads = 0, num_kv_heads = 0;
};

/// losa_complement at step 0: each (token, query head) row's prefix state and reference query
/// copied into the anchor buffers the block's later steps subtract from; a sequence sitting out
/// keeps its anchors.
struct AnchorCopyParams {
  const float* prefix_o = nullptr;    ///< [S, B, Hq, D]
  const float* prefix_lse = nullptr;  ///< [S, B, Hq]
  const void* q_ref = nullptr;        ///< [S, B, Hq, D] of the storage dtype
  float* anchor_o = nullptr;
  float* anchor_lse = nullptr;
  void* anchor_q = nullptr;
  int num_seqs = 0, rows_per_seq = 0, head_dim = 0, q_row_words = 0;  ///< rows_per_seq = B * Hq
  const uint8_t* seq_mask = nullptr;  ///< [S] zero: the sequence sits out (nullable)
};

/// SparseD's attention mass per (q head, page) under the full lse of every block row.
struct SparsedMassParams {
  PagedKVView kv;
  TokenRows q;                      ///< [S * B, Hq, D]
  const float* lse_full = nullptr;  ///< [S, B, Hq] natural log
  int block_size = 0, num_q_heads = 0, group = 0;
  float scale_log2 = 0.0f;
  float* mass = nullptr;  ///< [S, Hk, group, mass_stride], zeroed before the launch
  int mass_stride = 0;
  const uint8_t* seq_mask = nullptr;  ///< [S] zero: skipped
};

/// Appending num_tokens tokens to every sequence of a batch at its kv_len, and refreshing the
/// touched pages' key bounds. The lengths are advanced by a separate launch.
struct AppendParams {
  void* keys = nullptr;
  void* values = nullptr;
  void* key_min = nullptr;
  void* key_max = nullptr;
  int8_t* bounds8 = nullptr;     ///< nullable
  float* bound_scale = nullptr;
  const int32_t* page_indptr = nullptr;
  const int32_t* page_indices = nullptr;
  const int32_t* kv_len = nullptr;  ///< [S] before the append
  int num_seqs = 0;
  int num_tokens = 0;  ///< per sequence
  TokenRows k, v;      ///< [S * num_tokens, Hk, D]
  int num_kv_heads = 0, page_size = 0;
  const uint8_t* seq_mask = nullptr;  ///< [S] zero: nothing appended to the sequence
};

}  // namespace losa::cuda
