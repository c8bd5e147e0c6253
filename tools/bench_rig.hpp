#pragma once
// The benchmark's device setup: a batch of synthetic sequences in a DeviceKVCache with several
// layers (each layer its own copy of the prefix, so that rotating layers defeats the L2), the
// workload's step inputs on the device, and timing of an engine's steps replayed as one CUDA
// graph over consecutive layers (as a model runs them).
#include <cuda_runtime.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "losa/cuda/engine.hpp"
#include "losa/cuda/kv_cache.hpp"
#include "losa/synthetic.hpp"

namespace losa::tools {

struct RigConfig {
  std::vector<int> prefix_lens;  ///< one per sequence
  int block_size = 16;
  int num_layers = 2;            ///< KV copies allocated (the most any measurement rotates over)
  int max_steps = 4;             ///< workload steps kept on the device
  bool keep_bounds8 = false;
  uint64_t seed = 1;
  cuda::EngineOptions engine;  ///< every engine the rig makes (e.g. splits forced)
};

struct Measurement {
  std::string label;
  ModeConfig mode;
  int num_seqs = 1, layers = 1;  ///< sequences per step, layers per timed graph
  double time_us = 0.0, p10_us = 0.0, p90_us = 0.0;  ///< per layer-step
  std::vector<StepStats> stats;                      ///< per sequence, one layer
  std::map<std::string, double> stages;              ///< median us per stage (events in a graph)
  int64_t bytes() const;                             ///< K/V and bounds read per layer-step, all sequences
  double density() const;                            ///< mean over sequences
  double active_tokens() const;                      ///< mean over sequences
  size_t workspace_bytes = 0, layer_state_bytes = 0;
};

class BenchRig {
 public:
  BenchRig(const RigConfig& config, cudaStream_t stream);
  ~BenchRig();

  const BlockShape& shape() const { return shape_; }
  const PagedKVConfig& kv_config() const { return kv_config_; }
  int num_seqs() const { return static_cast<int>(config_.prefix_lens.size()); }
  int num_layers() const { return config_.num_layers; }
  int max_reserved_pages() const { return max_pages_; }
  /// Bytes of K/V of one layer (all sequences).
  int64_t layer_kv_bytes() const;

  /// Times the step kind that repeats within a block (LoSA t > 0, SparseD after its switch, any
  /// dense or quest step): `layers` consecutive layer-steps captured in one graph, replayed with
  /// inputs alternating between two workload steps; per layer-step medians. layers = 0: as many
  /// as make the bytes read at least 4x the L2 (capped by the rig's layers).
  Measurement time_steady_step(const std::string& label, const ModeConfig& mode, int reps, int warmup, int layers,
                               bool with_stages, size_t l2_bytes);

  /// One LoSA-like step's statistics at step 1 (no timing), for density curves.
  std::vector<StepStats> stats_of(const ModeConfig& mode);

  /// A whole block at one layer: step 0 then T - 1 later steps, each a graph launch timed by
  /// events; the median of the block's sum.
  double time_block(const ModeConfig& mode, int T, int reps, int warmup);

  /// The choices of a LoSA step t = 1 of sequence 0 (for the FlexAttention baseline).
  StepDecisions decisions_of(const ModeConfig& mode);

 private:
  struct Engine;
  std::unique_ptr<Engine> make_engine(const ModeConfig& mode, int layers) const;
  void load_step(int step) const;
  cuda::StepIO io() const;

  RigConfig config_;
  cudaStream_t stream_;
  BlockShape shape_;
  PagedKVConfig kv_config_;
  int max_pages_ = 0;
  std::unique_ptr<cuda::DeviceKVCache> cache_;
  std::vector<std::vector<cuda::DeviceBuffer>> step_q_, step_k_, step_v_;  // [step][seq]
  cuda::DeviceBuffer q_, k_, v_, o_;                                       // [S * B, heads, D]
};

}  // namespace losa::tools
