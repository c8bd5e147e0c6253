// losa_complement's middle step, and its step-0 copy of the anchors. For each active row: step 0's dense prefix state less the
// step-0 query's attention over the pages loaded this step (the splits of the second attention
// pass, merged here), written as one more split of the fresh pass, so that finalize merges it
// with the fresh part like any other split. One warp per (sequence, active slot, query head).
#include "common.cuh"
#include "dispatch.cuh"
#include "kv_view.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "losa/attention_state.hpp"

namespace losa::cuda {
namespace {

constexpr int kWarps = 4;

template <int D>
__global__ void __launch_bounds__(kWarps * 32) complement_kernel(const __grid_constant__ ComplementParams p) {
  wait_for_predecessor();  // PDL: the attention passes' partial states are visible from here on
  allow_successor();
  const int warp = blockIdx.x * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  const int Hq = p.num_q_heads, B = p.active.block_size;
  const int seq = warp / (B * Hq);
  if (seq >= p.num_seqs) return;
  const int slot = warp / Hq % B, h = warp % Hq;
  if (slot >= p.active.count[seq]) return;  // a sequence sitting out has no active token
  const int token = p.active.tokens[seq * B + slot];
  const int group = Hq / p.num_kv_heads, kvh = h / group;
  const int head_slot = seq * p.num_kv_heads + kvh, row = token * group + h % group;
  const int n = p.num_splits;

  // The step-0 query's part over the loaded pages: the merge of its splits. Lane j reads the lse
  // of splits j and j + 32 (n <= 63), so every split's weight is known after one round trip, and
  // the outputs' loads are then issued four splits at a time.
  const size_t first = partial_state_index(head_slot, n, 0, p.max_rows, row), stride = p.max_rows;
  const float lse0 = lane < n ? p.anchor_partial_lse[first + lane * stride] : -INFINITY;
  const float lse1 = lane + 32 < n ? p.anchor_partial_lse[first + (lane + 32) * stride] : -INFINITY;
  const float m = warp_max(fmaxf(lse0, lse1));
  const float w0 = lse0 == -INFINITY ? 0.0f : expf(lse0 - m), w1 = lse1 == -INFINITY ? 0.0f : expf(lse1 - m);
  const float l = m == -INFINITY ? 0.0f : warp_sum(w0 + w1);
  float part[D / 32] = {};
#pragma unroll 4
  for (int s = 0; s < n; ++s) {
    const float w = __shfl_sync(0xffffffffu, s < 32 ? w0 : w1, s % 32);
    const float* o = p.anchor_partial_o + (first + s * stride) * D;
#pragma unroll
    for (int i = 0; i < D / 32; ++i) part[i] += w * o[lane + 32 * i];  // an empty split's o is 0 (w is 0)
  }
  const float part_lse = l > 0.0f ? m + logf(l) : -INFINITY;

  // Step 0's state less that part (CPU twin: subtract_state).
  const size_t a = (static_cast<size_t>(seq) * B + token) * Hq + h;
  const float anchor_lse = p.anchor_lse[a];
  const float share = part_lse == -INFINITY || anchor_lse == -INFINITY ? 0.0f : expf(part_lse - anchor_lse);
  const float rest = 1.0f - share;
  const bool empty = anchor_lse == -INFINITY || rest < static_cast<float>(kSubtractEmptyBelow);
  const size_t out = partial_state_index(head_slot, n + 1, n, p.max_rows, row);
#pragma unroll
  for (int i = 0; i < D / 32; ++i) {
    const int e = lane + 32 * i;
    const float part_o = l > 0.0f ? part[i] / l : 0.0f;
    p.partial_o[out * D + e] = empty ? 0.0f : (p.anchor_o[a * D + e] - share * part_o) / rest;
  }
  if (lane == 0) p.partial_lse[out] = empty ? -INFINITY : anchor_lse + logf(rest);
}

__global__ void __launch_bounds__(kWarps * 32) anchor_copy_kernel(const __grid_constant__ AnchorCopyParams p) {
  wait_for_predecessor();  // PDL: the finalize's prefix state is visible from here on
  allow_successor();
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(p.num_seqs) * p.rows_per_seq) return;
  if (p.seq_mask && !p.seq_mask[row / p.rows_per_seq]) return;
  for (int e = lane; e < p.head_dim; e += 32) p.anchor_o[row * p.head_dim + e] = p.prefix_o[row * p.head_dim + e];
  const uint32_t* q = static_cast<const uint32_t*>(p.q_ref) + row * p.q_row_words;
  uint32_t* anchor_q = static_cast<uint32_t*>(p.anchor_q) + row * p.q_row_words;
  for (int w = lane; w < p.q_row_words; w += 32) anchor_q[w] = q[w];
  if (lane == 0) p.anchor_lse[row] = p.prefix_lse[row];
}

template <int D>
void launch(const ComplementParams& p, cudaStream_t stream) {
  const int warps = p.num_seqs * p.active.block_size * p.num_q_heads;
  launch_kernel(complement_kernel<D>, (warps + kWarps - 1) / kWarps, kWarps * 32, 0, stream, p);
  check_launch("complement_kernel");
}

}  // namespace

void launch_complement(int head_dim, const ComplementParams& p, cudaStream_t stream) {
  LOSA_DISPATCH_HEAD_DIM(head_dim, launch, p, stream);
}

void launch_anchor_copy(const AnchorCopyParams& p, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.num_seqs) * p.rows_per_seq;
  if (rows == 0) return;
  launch_kernel(anchor_copy_kernel, static_cast<unsigned>((rows + kWarps - 1) / kWarps), kWarps * 32, 0, stream, p);
  check_launch("anchor_copy_kernel");
}

}  // namespace losa::cuda
