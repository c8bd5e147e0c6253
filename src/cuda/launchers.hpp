#pragma once
// Host launchers of the CUDA kernels: fill nothing, validate nothing (the ops above them do),
// pick the template instance and grid, launch on `stream`, and throw BackendError if the launch
// failed. None synchronises, so a sequence of them can be captured in a CUDA graph.
#include <cuda_runtime.h>

#include "losa/dtype.hpp"
#include "params.hpp"

namespace losa::cuda {

/// Splits of each KV head's page list so that Hk * row_tiles * splits CTAs fill the GPU about
/// twice (two CTAs fit per SM), never more splits than tiles.
int choose_num_splits(int ctas_per_split, int max_tiles_per_kv_head, int num_sms);

void launch_paged_attention(DType dtype, int head_dim, const PagedAttentionParams& p,
                            int row_tiles, cudaStream_t stream);
void launch_active_set(DType dtype, int head_dim, const ActiveSetParams& p, cudaStream_t stream);
void launch_quest_scores(DType dtype, int head_dim, const QuestScoreParams& p, int row_tiles,
                         cudaStream_t stream);
void launch_topk(const TopKParams& p, int num_kv_heads, cudaStream_t stream);
void launch_union(const UnionParams& p, int num_kv_heads, cudaStream_t stream);
void launch_finalize(DType dtype, int head_dim, const FinalizeParams& p, cudaStream_t stream);
void launch_sparsed_mass(DType dtype, int head_dim, const SparsedMassParams& p, int row_tiles,
                         cudaStream_t stream);
void launch_append(DType dtype, int head_dim, const AppendParams& p, cudaStream_t stream);

}  // namespace losa::cuda
