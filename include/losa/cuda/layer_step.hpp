#pragma once
// One attention layer-step of one sequence on the GPU: the CUDA twin of losa::layer_step
// (losa/layer_step.hpp). A convenience over AttentionEngine (losa/cuda/engine.hpp) planned for
// one sequence, owning its workspace and layer state, and keeping every mode's prefix state so
// that tests can compare it; a model uses the engine directly.
//
// run() only enqueues kernels on the stream, so a step can be captured in a CUDA graph and
// replayed with new inputs in the same buffers. The kernels a step enqueues depend on the step
// index (step 0 is full, SparseD switches after its full steps), which the host tracks: capture
// a step of the kind you replay (any LoSA step t > 0 is alike).
#include <functional>
#include <memory>
#include <vector>

#include "losa/cuda/device_kv.hpp"
#include "losa/cuda/engine.hpp"
#include "losa/layer_step.hpp"

namespace losa::cuda {

/// Device pointers of one step, all in the cache's dtype: q [B, Hq, D], k_blk, v_blk [B, Hk, D],
/// o [B, Hq, D] (written).
struct DeviceStepIO {
  const void* q = nullptr;
  const void* k_blk = nullptr;
  const void* v_blk = nullptr;
  void* o = nullptr;
};

class LayerStepRunner {
 public:
  /// Throws ArgumentError naming the first bad argument (shape, config, mode).
  LayerStepRunner(const BlockShape& shape, const PagedKVConfig& kv_config, const ModeConfig& mode,
                  int max_prefix_pages, const EngineOptions& options = {});
  ~LayerStepRunner();
  LayerStepRunner(LayerStepRunner&&) noexcept;
  LayerStepRunner& operator=(LayerStepRunner&&) noexcept;

  /// The next run() is step 0 of a new block.
  void begin_block();
  int step() const;
  const ModeConfig& mode() const;

  /// Enqueues one layer-step on `stream`. The prefix (kv) must not change within a block.
  void run(const DevicePagedKV& kv, const DeviceStepIO& io, Stream stream = nullptr);

  /// Statistics of the last run (density, active tokens, bytes). Synchronises `stream`.
  StepStats last_stats(Stream stream = nullptr) const;
  /// The last run's choices in the CPU reference's form. Synchronises `stream`.
  StepDecisions last_decisions(Stream stream = nullptr) const;
  /// Called on the host between the stages a run enqueues (AttentionEngine::set_stage_hook).
  void set_stage_hook(std::function<void(const char* stage)> hook);

  /// The prefix state [B, Hq] lse fp32 (natural log) of the last run, downloaded.
  std::vector<float> prefix_lse(Stream stream = nullptr) const;
  const AttentionEngine& engine() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace losa::cuda
