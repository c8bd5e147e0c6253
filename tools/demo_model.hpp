#pragma once
// `losa demo` (the shipped model, or --model DIR): one long-context prompt of each task decoded
// by a model trained on the task suite in every mode, answers side by side with correctness,
// density and time per block.
#include <cstdint>
#include <string>

namespace losa::tools {

struct ModelDemoOptions {
  std::string model_dir;
  std::string device;       ///< empty: cuda where present, else cpu
  int64_t context_len = 0;  ///< 0: 32768 on the GPU (the longest trained length), 1024 on the CPU
  int budget_tokens = 256;
  int block_size = 16;
  uint64_t seed = 1;
};

int run_model_demo(const ModelDemoOptions& options);

}  // namespace losa::tools
