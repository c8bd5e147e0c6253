#pragma once
// One attention layer-step of block diffusion decoding on the GPU, in any mode: the CUDA twin of
// losa::layer_step (losa/layer_step.hpp), computing the same function.
//
// Every buffer is allocated up front for `max_prefix_pages`; counts (active tokens, union sizes)
// stay on the device; run() only enqueues kernels on the stream, so a whole step can be captured
// in a CUDA graph and replayed with new inputs in the same buffers. The kernels a step enqueues
// depend on the step index (step 0 is full, SparseD switches after its full steps), which the
// host tracks: capture a step of the kind you replay (any LoSA step t > 0 is alike).
#include <functional>
#include <memory>

#include "losa/cuda/device_buffer.hpp"
#include "losa/cuda/device_kv.hpp"
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
                  int max_prefix_pages);
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

  /// The last run's choices (fresh tokens, pages loaded and, with attend=own, each row's
  /// pages) in the CPU reference's form, which losa::layer_step can replay. Synchronises
  /// `stream`; for tests and diagnostics.
  StepDecisions last_decisions(Stream stream = nullptr) const;

  /// Called on the host between the stages a run enqueues, with the next stage's name
  /// ("active_set", "page_scores", "topk", "union", "attention", "finalize", "sparsed_select"):
  /// a benchmark records events there for the per-stage breakdown. Empty: no calls.
  void set_stage_hook(std::function<void(const char* stage)> hook);

  /// The cached prefix state [B, Hq, D] fp32 and lse [B, Hq] fp32 (natural log), on the device.
  const DeviceBuffer& prefix_o() const;
  const DeviceBuffer& prefix_lse() const;

 private:
  struct Impl;
  static PageSelection selection_from_device(const Impl& impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace losa::cuda
