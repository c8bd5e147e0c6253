#pragma once
// Host launchers of the CUDA kernels: fill nothing, validate only what the kernels' own limits
// need (ArgumentError: block size, strides the vector loads assume; the engine above them checks
// the rest), pick the template instance and grid, launch on `stream`, and throw BackendError if
// the launch failed. None synchronises, so a sequence of them can be captured in a CUDA graph.
// Grids are sized for the plan's capacity (num_seqs, max_pages); kernels read the actual
// lengths from device memory and idle where a sequence is shorter.
#include <cuda_runtime.h>

#include <cstddef>

#include "losa/dtype.hpp"
#include "params.hpp"

namespace losa::cuda {

/// Splits of each (sequence, KV head)'s page list: as many as one wave of the attention kernel
/// holds (resident_ctas: attention_resident_ctas), at least one, never more than tiles.
int choose_num_splits(int ctas_per_split, int max_tiles_per_kv_head, int resident_ctas);

/// Pipeline stages of the attention kernel on the current device: 2 at head dim 128 (faster
/// than 3 on the H100, and all sm_86/89 hold), 3 at head dim 64 where the opt-in shared memory
/// allows and every instance keeps the CTAs per SM of 2 stages (sm_90: yes; sm_86/89: no, 2).
/// force_attention_stages(2 or 3) overrides it (tests and benchmarks of either depth;
/// 3 is refused where the device cannot hold 3 stages at head dim 128, the larger footprint,
/// whatever the head dim used later); 0 restores the automatic choice.
int attention_stages(DType dtype, int head_dim);
void force_attention_stages(int stages);

/// The tensor-core path of the attention kernel's unmasked instances (dense, union, prefill):
/// wgmma on sm_90 in a build with sm_90a code for CTAs of >= 64 rows, mma.sync elsewhere and for
/// the masked instances. force_attention_mma overrides the automatic choice (tests and
/// benchmarks of both; wgmma is refused where it is not available); automatic restores it.
/// It is process-wide and read when an engine plans and when it launches: force it before
/// plan(), as force_attention_stages, or the plan's splits and the launch's instance disagree.
enum class AttentionMma { automatic = 0, mma_sync = 1, wgmma = 2 };
void force_attention_mma(AttentionMma mma);
bool attention_wgmma_available();
/// Whether the unmasked instance for max_rows rows per (sequence, KV head) uses wgmma now.
bool attention_uses_wgmma(int max_rows);

/// Rows a CTA of the attention kernel serves for up to max_rows rows per (sequence, KV head):
/// 128 (8 warps) past 64 rows, so that one page load serves them all; else 64.
int attention_rows_per_cta(int max_rows);
/// CTAs of the attention kernel instance that serves max_rows rows resident on the whole device
/// at once (the occupancy calculator, times the SMs).
int attention_resident_ctas(DType dtype, int head_dim, int max_rows);
/// Grid (ceil(max_rows / attention_rows_per_cta), num_splits, num_seqs * Hk).
void launch_paged_attention(DType dtype, int head_dim, const PagedAttentionParams& p, int num_seqs,
                            cudaStream_t stream);
void launch_active_set(DType dtype, int head_dim, const ActiveSetParams& p, int num_seqs, cudaStream_t stream);
/// Grid of one warp per (sequence, block token, query head); warps past a sequence's active count exit.
void launch_complement(int head_dim, const ComplementParams& p, cudaStream_t stream);
/// Grid of one warp per (sequence, block token, query head); a masked sequence's rows are skipped.
void launch_anchor_copy(const AnchorCopyParams& p, cudaStream_t stream);

/// QUEST page scores. At head dim 128 a grid whose loading CTAs fit one wave at 4 per SM gets
/// the 128-register instance, larger grids the 96-register one (5 per SM);
/// force_page_score_ctas_per_sm(4 or 5) overrides it for tests of both, 0 restores the choice.
void launch_quest_scores(DType dtype, int head_dim, const QuestScoreParams& p, int row_tiles, int num_seqs,
                         int max_pages, cudaStream_t stream);
void force_page_score_ctas_per_sm(int ctas);
/// The CTAs of the head-dim-`head_dim` page-score instance chosen by `ctas_per_sm` (4 or 5) that
/// the occupancy calculator lets one SM hold on this device; the dispatch sizes a wave by the
/// instance's own count, so the two must agree. Head dim 64 has one instance (either count).
int page_score_resident_ctas(DType dtype, int head_dim, int ctas_per_sm);
/// Grid (num_kv_heads, num_seqs, rows_per_kv_head); the union's page lists come out of the same
/// launch. max_pages <= topk_max_pages().
void launch_topk(const TopKParams& p, int num_kv_heads, int num_seqs, int max_pages, cudaStream_t stream);
/// The most pages per sequence the top-k can select among on the current device: a row's keys
/// (4 bytes a page) are staged in shared memory beside the kernel's own.
int topk_max_pages();
/// The split merge keeps 32 partial rows in flight per warp where the grid is one wave of such
/// CTAs (8 warps per SM), else 5 (more CTAs resident); force_finalize_rows_in_flight(5 or 32)
/// overrides it for tests of both instances, 0 restores the automatic choice.
void launch_finalize(DType dtype, int head_dim, const FinalizeParams& p, int num_seqs, cudaStream_t stream);
void force_finalize_rows_in_flight(int rows);
/// SparseD's group limit on the GPU (query heads per KV head).
int sparsed_max_group();
void launch_sparsed_mass(DType dtype, int head_dim, const SparsedMassParams& p, int row_tiles, int num_seqs,
                         int max_pages, cudaStream_t stream);
/// Appends p.num_tokens tokens to every sequence at its kv_len and refreshes the touched pages'
/// bounds; then advance_lengths adds the same count to every kv_len.
void launch_append(DType dtype, int head_dim, const AppendParams& p, cudaStream_t stream);
void launch_advance_lengths(int32_t* kv_len, int num_seqs, int num_tokens, const uint8_t* seq_mask,
                            cudaStream_t stream);

}  // namespace losa::cuda
