#pragma once
// `losa bench`: every attention mode on the GPU over the synthetic workload, timed with CUDA
// events (median of many replays of a CUDA graph of consecutive layer-steps, each layer its own
// copy of the prefix, as many layers as make each mode read at least 4x the L2), with density,
// bytes, bandwidth and the ratio to the own dense mode; the per-stage breakdown; the density
// curve; whole-block numbers; a batch of sequences of different lengths; a whole model's
// attention step (all layers, one graph) with the memory the engine holds.
#include <string>
#include <vector>

namespace losa::tools {

struct BenchOptions {
  std::vector<int> prefix_lens{8192, 32768, 65536, 131072};
  std::vector<int> block_sizes{16, 32};
  std::vector<int> budgets{128, 256, 512, 1024};
  std::vector<int> k_actives{1, 2, 4, 8};  ///< the block size is always added
  double tau = 0.5;
  double sparsed_skip = 0.2;
  std::vector<double> sparsed_selects{0.3, 0.5};
  std::vector<int> block_steps{4, 8, 16};
  /// Which measurements to run: dense, quest, losa (top-k rule), tau (LoSA's tau rule), sparsed.
  std::vector<std::string> modes{"dense", "quest", "losa", "tau", "sparsed"};
  bool density_curve = true;  ///< and whole blocks, at the headline configuration
  int reps = 50;
  int warmup = 5;
  uint64_t seed = 1;
  std::string json_path = "bench.json";
  /// Pages selected by the headline LoSA step (per KV head), for the FlexAttention baseline.
  std::string selection_path;
  // The headline configuration of the targets.
  int headline_len = 65536, headline_block = 16, headline_budget = 256, headline_active = 4;
  /// Batch: sequences of about batch_len tokens (lengths differ by 517), block headline_block.
  int batch_seqs = 8, batch_len = 32768;
  /// Whole model: this many layers of a batch_seqs x batch_len batch in one graph (0: skip).
  int model_layers = 36;
  bool bounds8 = true;  ///< also LoSA and QUEST with 8-bit bounds at the headline configuration
  int force_splits = 0;  ///< attention splits of every engine (0: the plan's)
  std::string attend = "own";  ///< own (each row its selected pages) or union, for QUEST, LoSA and SparseD
  int force_stages = 0;  ///< the attention kernel's pipeline stages, 2 or 3 (0: the device's choice)
  std::string attention_mma = "auto";  ///< the unmasked attention's tensor-core path: auto, sync or wgmma
};

int run_bench(const BenchOptions& options, const std::string& command_line);

}  // namespace losa::tools
