#pragma once
// `losa eval`: the task suite (tasks.hpp) decoded by a model in every attention mode and option
// set, scored by exact match, with the density, active tokens and time that each mode spent.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "losa/eval/tasks.hpp"
#include "losa/modes.hpp"
#include "losa/runtime/backend.hpp"
#include "losa/runtime/decoder.hpp"

namespace losa::eval {

/// One option set of one mode: what a record is keyed by.
struct ModeVariant {
  std::string mode;       ///< dense, quest, losa, sparsed
  std::string options;    ///< "k_active=4", "tau=0.5", "delta_min=0.01", "select=0.0078,skip=0.2"; "" for dense, quest
  int budget_tokens = 0;  ///< 0 for dense (it reads the whole prefix)
  ModeConfig config;
};

struct VariantGrid {
  std::vector<Mode> modes = {Mode::dense, Mode::quest, Mode::losa, Mode::sparsed};
  std::vector<int> budgets = {128, 256, 512, 1024};
  std::vector<int> k_actives = {0};  ///< LoSA's top-k rule variants (0: reuse step 0's prefix state)
  std::vector<double> taus = {0.5};  ///< LoSA's change-share rule variants
  std::vector<double> delta_mins;    ///< LoSA's per-row change-threshold variants
  bool with_complement = false;      ///< each LoSA variant also with losa_complement ("...,complement")
  double sparsed_skip = 0.2;
};

/// The variants of `grid` at one context length (SparseD keeps budget / context_len of the pages).
std::vector<ModeVariant> make_variants(const VariantGrid& grid, int64_t context_len);

struct EvalRecord {
  std::string task, mode, options;
  int budget_tokens = 0;
  int64_t context_len = 0;
  int samples = 0;
  double accuracy = 0.0;       ///< exact-match share, 0..1
  double density = 0.0;        ///< mean over the sequences' blocks
  double active_tokens = 0.0;  ///< mean over the sequences' blocks
  double time_per_block_us = 0.0;  ///< a batch's block wall time over its sequences, mean
  /// Per layer, means over the sequences' blocks: which layers' active sets and pages differ.
  std::vector<double> layer_density, layer_active_tokens;
  int block_size = 0, steps = 0;
  /// Each sample's generated tokens (up to and including eos), in sample order: what lets two
  /// runs (CPU and GPU, say) be compared answer by answer.
  std::vector<std::vector<int32_t>> generated;
};

struct EvalOptions {
  std::vector<Task> tasks = all_tasks();
  std::vector<int64_t> lengths = {4096};
  int samples = 10;       ///< per task and length
  uint64_t seed = 1;      ///< examples are make_example(task, length, eval_seed(seed, i))
  int batch = 16;         ///< prompts decoded together
  runtime::DecodeOptions decode;  ///< block size, steps, strategy (mode is set per variant)
};

/// The example seed of sample i: disjoint from the seeds `losa tasks` draws training data with.
uint64_t eval_seed(uint64_t seed, int64_t sample);

struct EvalProgress {
  int64_t done = 0, total = 0;  ///< decoded prompts
  double seconds = 0.0;
  std::string current;  ///< "16384 tokens, losa k_active=0 budget 256"
};

/// Decodes every (length, variant, task, sample) on `backend` and returns one record per
/// task x variant x length. `variants_at` gives the variants of a length.
std::vector<EvalRecord> evaluate(runtime::ModelBackend& backend, const EvalOptions& options,
                                 const std::function<std::vector<ModeVariant>(int64_t)>& variants_at,
                                 const std::function<void(const EvalProgress&)>& progress = {});

}  // namespace losa::eval
