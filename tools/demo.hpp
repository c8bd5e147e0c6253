#pragma once
// `losa demo`: a block of denoising steps on the synthetic workload, every mode against dense.
#include <string>
#include <vector>

#include "losa/layer_step.hpp"
#include "losa/synthetic.hpp"

namespace losa::tools {

struct DemoOptions {
  SyntheticConfig workload;
  int steps = 8;
  int budget_tokens = 256;
  double tau = 0.5;
  int k_active = 2;
  double sparsed_skip = 0.2;
  double sparsed_select = 0.3;
  std::string json_path;  ///< empty: no JSON
  bool use_gpu = true;    ///< run the CUDA backend too when it is built and a GPU is present
};

DemoOptions default_demo_options();
/// Runs the demo: 0 on success. Checks every option and the memory it needs before allocating
/// anything; throws FlagError or ArgumentError for a bad option (cli_errors.hpp reports them
/// naming the flag).
int run_demo(const DemoOptions& options);

/// One denoising step's inputs: q [B, Hq, D], k, v [B, Hk, D] (rounded to the cache dtype).
struct DemoStep {
  std::vector<float> q, k, v;
  std::vector<int> changed;
};

// The GPU path (demo_gpu.cpp, built with the CUDA backend only).
bool gpu_available(std::string* description);
/// Throws ArgumentError naming what the GPU backend cannot run (a block over 64 tokens, say),
/// allocating nothing.
void check_gpu_supports(const BlockShape& shape, const PagedKVConfig& kv, const ModeConfig& mode);
void run_mode_on_gpu(const PagedKVCache& cache, const BlockShape& shape, const ModeConfig& mode,
                     const std::vector<DemoStep>& steps, std::vector<std::vector<float>>* outputs,
                     std::vector<StepStats>* stats);

}  // namespace losa::tools
