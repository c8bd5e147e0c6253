#pragma once
// `losa demo`: a block of denoising steps on the synthetic workload, every mode against dense.
#include <string>

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
int run_demo(const DemoOptions& options);

}  // namespace losa::tools
