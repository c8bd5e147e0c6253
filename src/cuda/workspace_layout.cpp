#include "workspace_layout.hpp"

#include <algorithm>
#include <cstdint>

namespace losa::cuda {

namespace {
/// Hands out 256-byte aligned offsets.
class Bump {
 public:
  size_t take(size_t bytes) {
    const size_t at = end_;
    end_ += (bytes + 255) / 256 * 256;
    return at;
  }
  size_t end() const { return end_; }

 private:
  size_t end_ = 0;
};
}  // namespace

WorkspaceLayout workspace_layout(const BlockShape& shape, const PagedKVConfig& kv, const ModeConfig& mode,
                                 const EnginePlan& plan) {
  const size_t S = plan.num_seqs, B = shape.block_size, Hq = shape.num_q_heads, Hk = shape.num_kv_heads;
  const size_t D = shape.head_dim, G = shape.group_size(), rows = B * G, pages = plan.max_pages;
  const size_t splits = std::max(plan.splits_full, plan.splits_sparse);
  WorkspaceLayout w;
  w.words = static_cast<int>((pages + 31) / 32);
  w.flag_stride = static_cast<int>((pages + 15) / 16 * 16);
  w.score_stride = static_cast<int>((pages + 3) / 4 * 4);
  Bump bump;
  w.active_tokens = bump.take(S * B * 4);
  w.active_count = bump.take(S * 4);
  w.token_slot = bump.take(S * B * 4);
  w.delta = bump.take(S * B * sizeof(double));
  w.active_ticket = bump.take(S * 4);
  w.stats = bump.take(S * (1 + Hk) * 4);
  // losa_complement: one more split slot for the complement, and the step-0 query's own pass.
  const size_t slots = mode.losa_complement ? std::max(plan.splits_full, plan.splits_sparse + 1) : splits;
  w.partial_o = bump.take(S * Hk * slots * rows * D * 4);
  w.partial_lse = bump.take(S * Hk * slots * rows * 4);
  if (mode.losa_complement) {
    w.anchor_partial_o = bump.take(S * Hk * plan.splits_sparse * rows * D * 4);
    w.anchor_partial_lse = bump.take(S * Hk * plan.splits_sparse * rows * 4);
  }
  (void)kv;
  const bool quest = mode.mode == Mode::quest || mode.mode == Mode::losa;
  if (quest || mode.mode == Mode::sparsed) {
    w.union_flags = bump.take(S * Hk * w.flag_stride);
    w.union_ticket = bump.take(S * Hk * 4);
  }
  if (quest) {
    w.scores = bump.take(S * Hk * rows * w.score_stride * 4);
    w.lists = bump.take(S * Hk * pages * 4);
    w.phys = bump.take(S * Hk * pages * 4);
    w.counts = bump.take(S * Hk * 4);
    if (mode.attend == Attend::own) w.row_bits = bump.take(S * Hk * rows * w.words * 4);
  }
  if (mode.mode == Mode::sparsed) {
    w.mass_bytes = S * Hk * G * w.score_stride * 4;  // rows padded as the scores' (the top-k's vector loads)
    w.mass = bump.take(w.mass_bytes);
    w.lse_full = bump.take(S * B * Hq * 4);
  }
  w.total = bump.end();
  return w;
}

LayerStateLayout layer_state_layout(const BlockShape& shape, const PagedKVConfig& kv, const ModeConfig& mode,
                                    const EnginePlan& plan, bool store_prefix_state) {
  const size_t S = plan.num_seqs, B = shape.block_size, Hq = shape.num_q_heads, Hk = shape.num_kv_heads;
  const size_t D = shape.head_dim, G = shape.group_size(), pages = plan.max_pages;
  const size_t elem = dtype_bytes(kv.dtype), words = (pages + 31) / 32;
  LayerStateLayout st;
  Bump bump;
  if (mode.mode == Mode::losa || store_prefix_state) {
    st.prefix_o = bump.take(S * B * Hq * D * 4);
    st.prefix_lse = bump.take(S * B * Hq * 4);
  }
  if (mode.mode == Mode::losa) {
    st.q_ref = bump.take(S * B * Hq * D * elem);
    if (mode.change_includes_kv) {
      st.k_ref = bump.take(S * B * Hk * D * elem);
      st.v_ref = bump.take(S * B * Hk * D * elem);
    }
    if (mode.losa_complement) {
      st.anchor_o = bump.take(S * B * Hq * D * 4);
      st.anchor_lse = bump.take(S * B * Hq * 4);
      st.anchor_q = bump.take(S * B * Hq * D * elem);
    }
  }
  if (mode.mode == Mode::sparsed) {
    st.sparsed_lists = bump.take(S * Hk * pages * 4);
    st.sparsed_phys = bump.take(S * Hk * pages * 4);
    st.sparsed_counts = bump.take(S * Hk * 4);
    st.sparsed_bits = bump.take(S * Hk * G * words * 4);
  }
  st.total = bump.end();
  return st;
}

}  // namespace losa::cuda
