#pragma once
// The operations of one layer-step, as the naive CPU reference (double accumulation). Every
// backend implements the same functions; tests compare against these.
//
// Conventions: `q` is [block_size, num_q_heads, head_dim]; row r = token * num_q_heads + q_head;
// pages are *logical* page indices 0..num_pages-1 of the sequence (the cache maps them to
// physical pages); `tokens` lists block tokens to compute (sorted, unique); outputs for tokens
// not listed are left untouched.
#include <cstdint>
#include <vector>

#include "losa/modes.hpp"
#include "losa/paged_kv.hpp"
#include "losa/shapes.hpp"

namespace losa {

/// The prefix pages a layer-step loads, and which of them each row attends to.
struct PageSelection {
  int num_pages = 0;
  /// [num_kv_heads]: sorted unique pages loaded for each KV head (the union over its rows).
  std::vector<std::vector<int>> kv_head_pages;
  /// [num_rows] sorted pages each row attends to (attend=own). Empty: every row attends to all
  /// pages its KV head loaded (dense, attend=union).
  std::vector<std::vector<int>> row_pages;

  /// Pages loaded summed over KV heads.
  int64_t pages_loaded() const;
};

/// Every page, for every KV head: the dense selection.
PageSelection select_all_pages(int num_pages, int num_kv_heads);

/// Prefix part: attention of the listed tokens' rows over the selected pages of `seq`.
/// o: [block_size, num_q_heads, head_dim], lse: [block_size, num_q_heads] (natural log).
/// A row with no page gets the empty state (o = 0, lse = -inf).
void prefix_attention(const PagedKVCache& cache, int seq, const BlockShape& shape, const float* q,
                      const std::vector<int>& tokens, const PageSelection& selection, float scale,
                      float* o, float* lse);

/// Block part: every row over the block's own keys, bidirectional (no mask).
/// k_blk, v_blk: [block_size, num_kv_heads, head_dim]; o, lse as above, all tokens.
void block_attention(const BlockShape& shape, const float* q, const float* k_blk,
                     const float* v_blk, float scale, float* o, float* lse);

/// Indices of the k largest of scores[0..n), sorted ascending; ties go to the lower index.
/// k >= n returns all of 0..n-1.
std::vector<int> top_k_indices(const double* scores, int n, int k);

/// QUEST upper bounds sum_d max(q_d min_d, q_d max_d) for the listed tokens' rows, from the fp
/// bounds or (bounds8) the 8-bit ones. Returns [tokens.size(), num_q_heads, num_pages].
std::vector<double> quest_page_scores(const PagedKVCache& cache, int seq, const BlockShape& shape,
                                      const float* q, const std::vector<int>& tokens, bool bounds8 = false);

/// One row's QUEST pages from its scores over num_pages pages: the last page always, plus the
/// top budget_pages of the others (all pages when num_pages <= budget_pages + 1).
std::vector<int> quest_row_pages(const double* row_scores, int num_pages, int budget_pages);

/// QUEST selection for the listed tokens: per-row pages, their union per KV head; with
/// attend=union the row lists are dropped. Rows of unlisted tokens get no pages.
PageSelection quest_select(const PagedKVCache& cache, int seq, const BlockShape& shape,
                           const float* q, const std::vector<int>& tokens, int budget_tokens,
                           Attend attend, bool bounds8 = false);

/// Union per KV head of per-row page lists (row_pages: [num_rows]).
std::vector<std::vector<int>> union_per_kv_head(const std::vector<std::vector<int>>& row_pages,
                                                const BlockShape& shape);

/// LoSA's change score per block token: sum_h |q - q_ref|^2 / sum_h |q_ref|^2 (normalised MSE),
/// plus the same for block keys and values when k/k_ref/v/v_ref are given (else pass nullptr).
/// A zero reference with a zero change scores 0; a zero reference with a change scores +inf.
std::vector<double> change_scores(const BlockShape& shape, const float* q, const float* q_ref,
                                  const float* k = nullptr, const float* k_ref = nullptr,
                                  const float* v = nullptr, const float* v_ref = nullptr);

/// The active set from change scores, sorted by token index. Tokens with a zero change are
/// never active (recomputing them would change nothing the cache does not hold).
/// top_k: the k_active largest; tau: the fewest largest whose sum reaches tau * total;
/// delta_min: every token whose change is >= delta_min. Ties go to the lower token index.
/// Only the chosen rule's parameter is read (and validated).
std::vector<int> select_active_tokens(const std::vector<double>& delta, ActiveRule rule,
                                      int k_active, double tau, double delta_min = 0.01);

/// SparseD's attention mass per (q head, page): sum over all block tokens i and keys j of the
/// page of exp(scale * q_i . k_j - lse_i), with lse_i the row's full (prefix + block) lse.
/// Returns [num_q_heads, num_pages].
std::vector<double> sparsed_page_mass(const PagedKVCache& cache, int seq, const BlockShape& shape,
                                      const float* q, const float* lse_full, float scale);

/// SparseD's head-specific selection: per q head the top max(1, ceil(select * num_pages)) pages
/// by mass; every token row of head h attends to head h's pages (or the union: attend=union).
PageSelection sparsed_select(const std::vector<double>& mass, const BlockShape& shape,
                             int num_pages, double select_fraction, Attend attend);

/// Pages SparseD keeps per q head: max(1, ceil(select * num_pages)), at most num_pages.
int sparsed_pages_kept(int num_pages, double select_fraction);

}  // namespace losa
