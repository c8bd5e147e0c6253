#pragma once
// One attention layer-step of block diffusion decoding, in any mode (DESIGN.md sections 1-2).
//
//   o = merge(prefix part, block part)
// where the prefix part comes from the mode (dense, quest, losa with its cache, sparsed with its
// head-specific pages) and the block part is dense over the block's own keys.
#include <cstdint>
#include <vector>

#include "losa/modes.hpp"
#include "losa/ops.hpp"
#include "losa/paged_kv.hpp"
#include "losa/shapes.hpp"

namespace losa {

/// What one layer-step did: the attention density of the paper and the bytes behind it.
struct StepStats {
  Mode mode = Mode::dense;
  int step = 0;
  bool full_step = false;  ///< the prefix part was computed for every block token
  int active_tokens = 0;   ///< block tokens whose prefix part was (re)computed
  int num_pages = 0;       ///< pages of the prefix
  std::vector<int64_t> pages_loaded;  ///< [num_kv_heads] KV pages read per KV head
  int64_t kv_bytes = 0;               ///< bytes of K and V pages read
  int64_t bounds_bytes = 0;           ///< bytes of page key bounds read for QUEST scoring

  /// Pages loaded over pages existing, averaged over KV heads (0 for an empty prefix).
  double density() const;
};

/// The data-dependent choices of one step: the tokens whose prefix part was computed and the
/// pages loaded (with each row's pages under attend=own). A backend reports them, and the CPU
/// reference can replay another backend's choices, so that the two are compared on the same
/// selection even where near-tied scores let them choose differently (DESIGN.md section 5).
struct StepDecisions {
  std::vector<int> tokens;
  PageSelection selection;
};

/// The per-layer state a block carries across its denoising steps.
class LayerBlockState {
 public:
  /// The next layer_step is step 0 of a new block.
  void begin_block() { step_ = 0; }
  int step() const { return step_; }

  // Cached per (token, q head) prefix state: o [B, Hq, D], lse [B, Hq]; LoSA's references
  // q_ref [B, Hq, D] and (with change_includes_kv) k_ref, v_ref [B, Hk, D].
  const std::vector<float>& prefix_o() const { return prefix_o_; }
  const std::vector<float>& prefix_lse() const { return prefix_lse_; }
  const std::vector<float>& q_ref() const { return q_ref_; }
  const std::vector<float>& k_ref() const { return k_ref_; }
  const std::vector<float>& v_ref() const { return v_ref_; }
  /// With losa_complement: step 0's dense prefix state and query, kept for the whole block.
  const std::vector<float>& anchor_o() const { return anchor_o_; }
  const std::vector<float>& anchor_lse() const { return anchor_lse_; }
  const std::vector<float>& anchor_q() const { return anchor_q_; }
  /// SparseD's selection, valid after its switch step.
  const PageSelection& sparsed_selection() const { return sparsed_selection_; }

 private:
  friend StepStats layer_step(const PagedKVCache&, int, const BlockShape&, const ModeConfig&,
                              const float*, const float*, const float*, LayerBlockState&, float*,
                              const StepDecisions*, StepDecisions*);
  int step_ = 0;
  int kv_len_ = -1;  // the prefix length at step 0: appending into the last page changes it too
  std::vector<float> prefix_o_, prefix_lse_, q_ref_, k_ref_, v_ref_;
  std::vector<float> anchor_o_, anchor_lse_, anchor_q_;  // step 0's state and query (losa_complement)
  PageSelection sparsed_selection_;
};

/// Runs one layer-step on the CPU reference backend.
/// q: [B, Hq, D]; k_blk, v_blk: [B, Hk, D]; o: [B, Hq, D] (written). The prefix of `seq` must not
/// change between begin_block() and the block's last step.
/// replay (optional): use these choices instead of making them (SparseD's switch step still
/// derives its stored selection itself). decided (optional): receives the choices made.
StepStats layer_step(const PagedKVCache& cache, int seq, const BlockShape& shape,
                     const ModeConfig& config, const float* q, const float* k_blk,
                     const float* v_blk, LayerBlockState& state, float* o,
                     const StepDecisions* replay = nullptr, StepDecisions* decided = nullptr);

}  // namespace losa
