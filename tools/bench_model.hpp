#pragma once
// `losa bench-model`: the whole model on the GPU; see bench_model.cpp.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace losa::tools {

struct BenchModelOptions {
  std::string model_dir, random_weights;
  std::vector<int64_t> prefill_lens{8192, 32768, 65536};
  /// (sequences, longest prompt): the batch shapes of the denoising-step timings.
  std::vector<std::pair<int, int64_t>> batches{{1, 65536}, {4, 65536}, {8, 32768}};
  std::vector<std::string> modes{"dense", "quest", "losa", "sparsed"};
  int budget = 256, block_size = 16, steps = 4, prefill_chunk = 2048, reps = 10;
  std::string json_path = "bench_model.json";
  /// Also time quest and losa with 8-bit page bounds (the cache then keeps both kinds).
  bool bounds8 = false;
  /// Also time each mode's later steps by kernel group (CudaBackendOptions::stage_hook).
  bool stages = false;
  /// Only the decode-shape GEMM: every compiled instance and K split, per shape (no model).
  bool gemm_sweep = false;
};

int run_bench_model(const BenchModelOptions& options, const std::string& command_line);

}  // namespace losa::tools
