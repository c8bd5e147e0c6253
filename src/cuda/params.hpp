#pragma once
// Parameter structs of the CUDA kernels: plain data, filled by the host ops, passed by value as
// __grid_constant__ kernel arguments. Pointers are device pointers.
//
// Row packing (one KV page load serves every row of its KV head): for KV head h the rows are
// r = a * group + g for the a-th active token and the g-th query head of the group, a < *count.
#include <cstdint>

namespace losa::cuda {

/// Rows of one CTA of the row-packed kernels (attention, QUEST scores, SparseD mass): four warps
/// of 16 rows, the block size 16 times a GQA group of 4.
constexpr int kRowsPerCta = 64;

/// A paged KV cache on the device (HND layout, see losa/paged_kv.hpp) and one sequence's pages.
struct PagedKVView {
  const void* keys = nullptr;     ///< [max_pages, Hk, P, D]
  const void* values = nullptr;   ///< [max_pages, Hk, P, D]
  const void* key_min = nullptr;  ///< [max_pages, Hk, D]
  const void* key_max = nullptr;  ///< [max_pages, Hk, D]
  const int32_t* page_table = nullptr;  ///< [num_pages] logical -> physical page of the sequence
  int num_pages = 0;                    ///< pages of the sequence's prefix
  int last_page_len = 0;                ///< valid tokens of the last page
  int num_kv_heads = 0;
  int page_size = 16;
};

/// The block's active tokens: the rows a step recomputes.
struct ActiveSetView {
  const int32_t* tokens = nullptr;      ///< [block_size] active tokens, ascending, first *count
  const int32_t* count = nullptr;       ///< [1]
  const int32_t* token_slot = nullptr;  ///< [block_size] position in tokens, or -1
};

/// Pages each KV head loads: a compacted list of logical pages per KV head, or every page.
struct PageListView {
  const int32_t* pages = nullptr;   ///< [Hk, list_stride] logical pages; null: every page (dense)
  const int32_t* phys = nullptr;    ///< [Hk, list_stride] their physical pages (nullable)
  const int32_t* counts = nullptr;  ///< [Hk]
  int list_stride = 0;
};

/// attend=own: per row a bitmap over logical pages; null for attend=union / dense.
struct RowMaskView {
  const uint32_t* bits = nullptr;  ///< [Hk, rows_per_kv_head, words]
  int words = 0;                   ///< ceil(num_pages / 32)
  int rows_per_kv_head = 0;
  bool by_head_only = false;  ///< SparseD: the mask row is the head g, whatever the token
};

struct PagedAttentionParams {
  PagedKVView kv;
  ActiveSetView active;
  PageListView list;
  RowMaskView mask;
  const void* q = nullptr;  ///< [B, Hq, D]
  int num_q_heads = 0;
  int group = 0;            ///< Hq / Hk
  int max_rows = 0;         ///< rows per KV head at most: block_size * group
  float scale_log2 = 0.0f;  ///< softmax scale * log2(e)
  int num_splits = 1;
  float* partial_o = nullptr;    ///< [Hk, num_splits, max_rows, D]
  float* partial_lse = nullptr;  ///< [Hk, num_splits, max_rows], natural log
};

}  // namespace losa::cuda

namespace losa::cuda {

/// Change scores and the active set (LoSA), or every token active (full steps).
struct ActiveSetParams {
  const void* q = nullptr;      ///< [B, Hq, D]
  const void* q_ref = nullptr;  ///< [B, Hq, D]
  const void* k = nullptr;      ///< [B, Hk, D] (with k_ref, v, v_ref: the combined QKV score)
  const void* k_ref = nullptr;
  const void* v = nullptr;
  const void* v_ref = nullptr;
  int block_size = 0, num_q_heads = 0, num_kv_heads = 0;
  int rule = 0;  ///< 0: every token active, 1: top k_active, 2: tau
  int k_active = 0;
  double tau = 0.5;
  double* delta = nullptr;        ///< [B] change scores (out)
  unsigned* ticket = nullptr;     ///< [1] zero before the first launch; the last block resets it
  int32_t* tokens = nullptr;      ///< [B] out
  int32_t* count = nullptr;       ///< [1] out
  int32_t* token_slot = nullptr;  ///< [B] out
};

/// QUEST upper bounds for the packed rows of each KV head.
struct QuestScoreParams {
  PagedKVView kv;
  ActiveSetView active;
  const void* q = nullptr;
  int num_q_heads = 0, group = 0, max_rows = 0;
  float* scores = nullptr;  ///< [Hk, max_rows, score_stride]
  int score_stride = 0;
};

/// Per-row top-k of scores, union flags per KV head and per-row page bitmaps.
struct TopKParams {
  const float* scores = nullptr;  ///< [Hk, rows_per_kv_head, score_stride]
  int score_stride = 0;
  int rows_per_kv_head = 0;
  const int32_t* active_count = nullptr;  ///< valid rows = *active_count * group; null: all
  int group = 0;
  int num_pages = 0;
  bool keep_last = false;  ///< QUEST: the last page is always kept and not a candidate
  int k = 0;               ///< pages chosen among the candidates
  uint8_t* union_flags = nullptr;  ///< [Hk, flag_stride] set to 1 where chosen (nullable)
  int flag_stride = 0;             ///< a multiple of 4, >= num_pages
  uint32_t* row_bits = nullptr;    ///< [Hk, rows_per_kv_head, words] (nullable)
  int words = 0;
};

/// Compaction of union flags into page lists (flags are cleared for the next step).
struct UnionParams {
  uint8_t* flags = nullptr;  ///< [Hk, flag_stride]
  int flag_stride = 0;       ///< a multiple of 4, >= num_pages
  int num_pages = 0;
  int32_t* pages = nullptr;  ///< [Hk, list_stride] logical pages
  int list_stride = 0;
  int32_t* counts = nullptr;  ///< [Hk]
  const int32_t* page_table = nullptr;  ///< logical -> physical (with phys: written beside pages)
  int32_t* phys = nullptr;              ///< [Hk, list_stride] (nullable)
};

/// Split merge, LoSA cache update, block part and final merge: one warp per (token, head).
struct FinalizeParams {
  const void* q = nullptr;      ///< [B, Hq, D]
  const void* k_blk = nullptr;  ///< [B, Hk, D]
  const void* v_blk = nullptr;
  ActiveSetView active;         ///< tokens whose prefix part was computed this step
  const float* partial_o = nullptr;  ///< [Hk, num_splits, max_rows, D]
  const float* partial_lse = nullptr;
  int num_splits = 1, max_rows = 0;
  bool has_prefix = true;       ///< false for an empty prefix: the prefix part is empty
  float* prefix_o = nullptr;    ///< [B, Hq, D] cached prefix state (read, or written if fresh)
  float* prefix_lse = nullptr;  ///< [B, Hq]
  void* q_ref = nullptr;        ///< [B, Hq, D] written for fresh tokens (nullable)
  void* k_ref = nullptr;        ///< [B, Hk, D] (nullable)
  void* v_ref = nullptr;
  void* o = nullptr;            ///< [B, Hq, D] out
  float* lse = nullptr;         ///< [B, Hq] merged lse out (nullable)
  int block_size = 0, num_q_heads = 0, num_kv_heads = 0;
  float scale = 0.0f;
};

/// SparseD's attention mass per (q head, page) under the full lse of every block row.
struct SparsedMassParams {
  PagedKVView kv;
  const void* q = nullptr;         ///< [B, Hq, D]
  const float* lse_full = nullptr;  ///< [B, Hq] natural log
  int block_size = 0, num_q_heads = 0, group = 0;
  float scale_log2 = 0.0f;
  float* mass = nullptr;  ///< [Hk, group, mass_stride], zeroed before the launch
  int mass_stride = 0;
};

/// Appending tokens to a sequence's pages and refreshing the touched pages' key bounds.
struct AppendParams {
  void* keys = nullptr;
  void* values = nullptr;
  void* key_min = nullptr;
  void* key_max = nullptr;
  const int32_t* page_table = nullptr;  ///< logical -> physical, covering the new tokens
  int start = 0;       ///< kv_len before the append
  int num_tokens = 0;
  const void* k = nullptr;  ///< [num_tokens, Hk, D]
  const void* v = nullptr;
  int num_kv_heads = 0, page_size = 0;
};

}  // namespace losa::cuda
