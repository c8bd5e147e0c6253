#pragma once
// The attention engine of a whole model on the GPU, in the style of FlashInfer's batch wrappers:
//
//   AttentionEngine engine(shape, kv_config, mode);
//   engine.plan(num_seqs, max_pages_per_seq);           // host, when the batch changes
//   DeviceBuffer ws(engine.workspace_bytes());          // one workspace, shared by all layers
//   engine.bind_workspace(ws.data(), ws.bytes(), stream);
//   per layer: LayerState st = engine.make_layer_state(storage, bytes, stream);  // caller-owned
//   per step and layer: engine.run(cache.view(layer), io, st, step, stream);
//
// run() computes the same function as losa::layer_step (losa/layer_step.hpp) for every sequence
// of the batch at once: one set of launches for all sequences (same block size B, each with its
// own prefix length), reading the lengths from device memory. It only enqueues work: a whole
// denoising step of every layer can be captured in one CUDA graph and replayed block after block
// (appends and length advances are device operations of DeviceKVCache). The launches depend on
// the step kind (step 0, a LoSA step t > 0, SparseD's switch and sparse steps), so capture one
// graph per kind.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "losa/cuda/device_buffer.hpp"
#include "losa/cuda/kv_cache.hpp"
#include "losa/layer_step.hpp"

namespace losa::cuda {

/// The tensors of one step, all in the cache's dtype, token-major with token row t = s * B + i
/// for token i of sequence s (TokenTensor strides allow slices of a fused QKV output; rows and
/// bases must be 16-byte aligned): q [S * B, Hq, D], k, v [S * B, Hk, D], o [S * B, Hq, D]
/// (written). stats (optional, device int32 [S, 1 + Hk]): active tokens, then pages loaded per
/// KV head, written by the step.
struct StepIO {
  TokenTensor q, k, v;
  void* o = nullptr;
  int64_t o_stride = 0;
  int32_t* stats = nullptr;
  /// Optional device [S]: a zero entry makes its sequence sit the step out (its output, its
  /// layer state and its statistics are left as they are), as a sequence that finished its
  /// block's denoising waits for the others. The mask is read on the device: graph-safe.
  const uint8_t* seq_mask = nullptr;
};

/// Per-layer state (LoSA's cached prefix state and references, SparseD's selection): device
/// memory owned by the caller, plus the host's record of the block it belongs to.
struct LayerState {
  void* device = nullptr;
  size_t bytes = 0;
  int64_t block_version = -1;  ///< the cache version at the block's step 0 (host guard)
};

/// The most splits of a page list (bounds the partial-state buffers; 64 x 8 KV heads fill 132 SMs).
constexpr int kMaxAttentionSplits = 64;

struct EngineOptions {
  int force_num_splits = 0;   ///< tests: split every page list this many ways, <= kMaxAttentionSplits (0: plan's choice)
  /// Keep every mode's prefix state (o, lse) in the layer state, not only LoSA's (tests).
  bool store_prefix_state = false;
};

/// What plan() decided (for reports and tests).
struct EnginePlan {
  int num_seqs = 0, max_pages = 0;
  int splits_full = 1, splits_sparse = 1;  ///< attention splits on full and on LoSA steps
  size_t workspace_bytes = 0, layer_state_bytes = 0;
};

class AttentionEngine {
 public:
  /// Throws ArgumentError naming the first bad argument (shape, config, mode, options).
  AttentionEngine(const BlockShape& shape, const PagedKVConfig& kv_config, const ModeConfig& mode,
                  const EngineOptions& options = {});
  ~AttentionEngine();
  AttentionEngine(AttentionEngine&&) noexcept;
  AttentionEngine& operator=(AttentionEngine&&) noexcept;

  /// Host: sizes the splits, the selection and the buffers for num_seqs sequences of at most
  /// max_pages_per_seq prefix pages each. Invalidates a bound workspace.
  const EnginePlan& plan(int num_seqs, int max_pages_per_seq);
  const EnginePlan& current_plan() const;

  size_t workspace_bytes() const;
  size_t layer_state_bytes() const;
  /// Binds caller-owned workspace (>= workspace_bytes(), 256-byte aligned) and clears its
  /// counters on `stream`.
  void bind_workspace(void* device, size_t bytes, Stream stream = nullptr);
  /// Wraps caller-owned per-layer storage (>= layer_state_bytes(), 256-byte aligned; may be
  /// null when layer_state_bytes() is 0) and clears it on `stream`.
  LayerState make_layer_state(void* device, size_t bytes, Stream stream = nullptr) const;

  /// Enqueues step `step` of the current block for every sequence of `kv` (as many as planned).
  /// Step 0 starts a block; the prefix must not change until the block's last step.
  void run(const KVBatchView& kv, const StepIO& io, LayerState& state, int step, Stream stream = nullptr);

  /// Which launches run(step) enqueues: steps of equal kind enqueue the same kernels, so one
  /// captured graph serves them all (LoSA: 0 at step 0, 1 after; SparseD: 0 for the full steps
  /// before its switch, 1 at the switch, 2 after; dense and quest: always 0).
  int step_kind(int step) const;

  /// Statistics of the last run for sequence `seq` (synchronises `stream`).
  StepStats last_stats(int seq, Stream stream = nullptr) const;
  /// The last run's choices for sequence `seq` in the CPU reference's form (synchronises; the
  /// workspace holds them until the next run, the layer state holds SparseD's).
  StepDecisions last_decisions(int seq, const LayerState& state, Stream stream = nullptr) const;

  /// Called on the host between the stages run() enqueues, with the next stage's name
  /// ("active_set", "page_scores", "topk" (with the union's page lists), "attention", "finalize",
  /// "sparsed_select", "done"): a benchmark records events there for the per-stage breakdown.
  void set_stage_hook(std::function<void(const char* stage)> hook);

  const BlockShape& shape() const;
  const PagedKVConfig& kv_config() const;
  const ModeConfig& mode() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Device memory for a workspace or layer state, allocated and aligned for the engine.
DeviceBuffer allocate_for_engine(size_t bytes);

}  // namespace losa::cuda
