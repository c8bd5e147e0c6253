#pragma once
// Where each buffer of the engine lives: the workspace (shared by every layer, reused step after
// step) and the per-layer state (LoSA's cached prefix state and references, SparseD's selection).
// Offsets are 256-byte aligned; a buffer a mode does not use has size 0.
#include <cstddef>

#include "losa/cuda/engine.hpp"

namespace losa::cuda {

struct WorkspaceLayout {
  size_t active_tokens = 0, active_count = 0, token_slot = 0, delta = 0, active_ticket = 0, stats = 0;
  size_t partial_o = 0, partial_lse = 0;
  size_t anchor_partial_o = 0, anchor_partial_lse = 0;  ///< losa_complement's step-0 query pass
  size_t scores = 0, union_flags = 0, union_ticket = 0, lists = 0, phys = 0, counts = 0, row_bits = 0;
  size_t mass = 0, mass_bytes = 0, lse_full = 0;
  int words = 0;        ///< 32-bit words of a page bitmap row
  int flag_stride = 0;  ///< bytes of a union flag row (a multiple of 16)
  int score_stride = 0;  ///< floats of a score row (a multiple of 4: scores are stored in pairs)
  size_t total = 0;
};

struct LayerStateLayout {
  size_t prefix_o = 0, prefix_lse = 0, q_ref = 0, k_ref = 0, v_ref = 0;
  size_t anchor_o = 0, anchor_lse = 0, anchor_q = 0;  ///< losa_complement: step 0's state and query
  size_t sparsed_lists = 0, sparsed_phys = 0, sparsed_counts = 0, sparsed_bits = 0;
  size_t total = 0;
};

WorkspaceLayout workspace_layout(const BlockShape& shape, const PagedKVConfig& kv, const ModeConfig& mode,
                                 const EnginePlan& plan);
LayerStateLayout layer_state_layout(const BlockShape& shape, const PagedKVConfig& kv, const ModeConfig& mode,
                                    const EnginePlan& plan, bool store_prefix_state);

}  // namespace losa::cuda
