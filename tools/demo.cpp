#include "demo.hpp"

#include <climits>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli_errors.hpp"
#include "losa/layer_step.hpp"
#include "losa/runtime/weights.hpp"

namespace losa::tools {
namespace {

struct ModeRun {
  std::string label;
  ModeConfig config;
  std::vector<StepStats> stats;
  std::vector<double> error;  // relative L2 error of o against dense, per step
  std::vector<StepStats> gpu_stats;
  std::vector<double> gpu_error;  // GPU output against the CPU output of the same mode
};

double relative_l2(const std::vector<float>& x, const std::vector<float>& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(x[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Sizes in bytes saturate at INT64_MAX instead of wrapping around, so that a huge request is
// refused as huge rather than passing as a small or negative number.
int64_t times(std::initializer_list<int64_t> factors) {
  for (int64_t f : factors)
    if (f == 0) return 0;
  int64_t product = 1;
  for (int64_t f : factors)
    if (__builtin_mul_overflow(product, f, &product)) return INT64_MAX;
  return product;
}
int64_t plus(int64_t a, int64_t b) {
  int64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

// The flags that the demo's memory grows with, in 64 bits.
struct DemoSizes {
  int64_t prefix_len, block, steps, q_heads, kv_heads;
};

DemoSizes sizes_of(const DemoOptions& o) {
  const BlockShape& s = o.workload.shape;
  return {o.workload.prefix_len, s.block_size, o.steps, s.num_q_heads, s.num_kv_heads};
}

struct DemoBytes {
  int64_t cache = 0;    // the workload's paged KV cache
  int64_t buffers = 0;  // everything else
  int64_t total() const { return plus(cache, buffers); }
};

// What the demo holds at its peak: the cache (K, V and the key bounds of every page), the
// generator's heavy-hitter directions, every step's inputs, the dense outputs, one mode's
// outputs (CPU and GPU), the reference's layer state and its QUEST page scores (a double and a
// chosen page index per row and page). The large terms only: a lower bound, close at scale.
DemoBytes demo_bytes(const DemoSizes& s, const DemoOptions& o, bool gpu) {
  const SyntheticConfig& wc = o.workload;
  const int64_t D = wc.shape.head_dim, P = wc.page_size, f32 = 4;
  const int64_t pages = SyntheticWorkload::cache_pages(s.prefix_len, wc.page_size, s.block);
  const int64_t prefix_pages = (s.prefix_len + P - 1) / P;
  const int64_t q = times({s.block, s.q_heads, D}), kv = times({s.block, s.kv_heads, D});
  DemoBytes b;
  b.cache = times({pages, s.kv_heads, 2 * (P + 1) * D, dtype_bytes(wc.dtype)});
  int64_t floats = times({s.prefix_len / wc.salient_every + 1, s.kv_heads, D + 16});
  floats = plus(floats, times({s.steps + 1, plus(q, times({2, kv}))}));
  floats = plus(floats, times({s.steps, q, gpu ? 3 : 2}));
  floats = plus(floats, plus(times({3, q}), times({2, kv})));
  b.buffers = plus(times({floats, f32}), times({s.block, s.q_heads, prefix_pages, 8 + 4}));
  return b;
}

// Refuses, before anything is allocated, a request that needs more memory than the host has
// (or LOSA_HOST_MEMORY_LIMIT allows), naming the flag whose value makes it large: the one that,
// set back to its default, would shrink the request the most.
void check_demo_memory(const DemoOptions& o, bool gpu) {
  const DemoSizes asked = sizes_of(o), defaults = sizes_of(default_demo_options());
  const DemoBytes need = demo_bytes(asked, o, gpu);
  static const std::pair<const char*, int64_t DemoSizes::*> flags[] = {
      {"--prefix-len", &DemoSizes::prefix_len}, {"--block", &DemoSizes::block},
      {"--steps", &DemoSizes::steps}, {"--q-heads", &DemoSizes::q_heads},
      {"--kv-heads", &DemoSizes::kv_heads}};
  const char* culprit = flags[0].first;
  int64_t least = INT64_MAX;
  for (const auto& [flag, field] : flags) {
    DemoSizes smaller = asked;
    smaller.*field = std::min(asked.*field, defaults.*field);
    const int64_t bytes = demo_bytes(smaller, o, gpu).total();
    if (bytes < least) {
      least = bytes;
      culprit = flag;
    }
  }
  runtime::check_host_memory(
      need.total(), culprit,
      "the demo (its KV cache " + runtime::format_bytes(static_cast<double>(need.cache)) +
          ", the inputs, outputs and scores of " + std::to_string(o.steps) +
          (o.steps == 1 ? " step " : " steps ") +
          runtime::format_bytes(static_cast<double>(need.buffers)) + ")");
  // The reference indexes query rows with int.
  if (times({asked.block, asked.q_heads}) > INT_MAX)
    bad_flag("--block", "times --q-heads makes " + std::to_string(times({asked.block, asked.q_heads})) +
                            " query rows, more than " + std::to_string(INT_MAX));
}

}  // namespace

DemoOptions default_demo_options() {
  DemoOptions o;
  o.workload.shape = BlockShape{16, 16, 4, 64};
  o.workload.prefix_len = 4096;
  o.workload.page_size = 16;
  o.workload.dtype = DType::bf16;
  o.workload.changing_tokens = 2;
  return o;
}

int run_demo(const DemoOptions& opt) {
  const SyntheticConfig& wc = opt.workload;
  // Every flag is checked and the memory sized before anything is allocated or computed.
  if (opt.steps < 1) bad_flag("--steps", "must be >= 1, got " + std::to_string(opt.steps));
  [[maybe_unused]] const PagedKVConfig kv_config = SyntheticWorkload::cache_config(wc);  // validates
  std::vector<ModeRun> runs;
  auto add = [&](const std::string& label, Mode mode, auto&& tweak) {
    ModeRun run;
    run.label = label;
    run.config.mode = mode;
    run.config.budget_tokens = opt.budget_tokens;
    run.config.steps_per_block = opt.steps;
    run.config.sparsed_skip = opt.sparsed_skip;
    run.config.sparsed_select = opt.sparsed_select;
    tweak(run.config);
    validate(run.config, wc.shape.block_size, wc.page_size);
    runs.push_back(run);
  };
  add("dense", Mode::dense, [](ModeConfig&) {});
  add("quest", Mode::quest, [](ModeConfig&) {});
  add("losa tau=" + std::to_string(opt.tau).substr(0, 4), Mode::losa, [&](ModeConfig& c) {
    c.active_rule = ActiveRule::tau;
    c.tau = opt.tau;
  });
  add("losa k_active=" + std::to_string(opt.k_active), Mode::losa, [&](ModeConfig& c) {
    c.active_rule = ActiveRule::top_k;
    c.k_active = opt.k_active;
  });
  add("sparsed", Mode::sparsed, [](ModeConfig&) {});
  const DType dt = wc.dtype;
  std::string gpu;
#ifdef LOSA_WITH_CUDA
  const bool use_gpu = opt.use_gpu && dt != DType::f32 && gpu_available(&gpu);
  if (use_gpu)  // what the GPU cannot run (B > 64, say) fails now, not after the CPU's work
    for (const ModeRun& run : runs) check_gpu_supports(wc.shape, kv_config, run.config);
#else
  const bool use_gpu = false;
#endif
  check_demo_memory(opt, use_gpu);
  std::ofstream json_out;
  if (!opt.json_path.empty()) json_out = open_output(opt.json_path, "--json");

  std::printf("losa demo (CPU reference backend): prefix %d tokens, block %d, %d q heads, %d kv "
              "heads, head dim %d, page %d, %s, %d steps\n",
              wc.prefix_len, wc.shape.block_size, wc.shape.num_q_heads, wc.shape.num_kv_heads,
              wc.shape.head_dim, wc.page_size, dtype_name(wc.dtype), opt.steps);
  SyntheticWorkload workload(wc);
  std::vector<DemoStep> inputs;
  for (int t = 0; t < opt.steps; ++t) {
    workload.next_step();
    inputs.push_back({rounded_to(dt, workload.q()), rounded_to(dt, workload.k_block()),
                      rounded_to(dt, workload.v_block()), workload.changed_tokens()});
  }

  const BlockShape& shape = wc.shape;
  std::vector<std::vector<float>> dense_out;
  for (auto& run : runs) {
    LayerBlockState state;
    state.begin_block();
    std::vector<std::vector<float>> outputs;
    for (int t = 0; t < opt.steps; ++t) {
      std::vector<float> o(inputs[t].q.size());
      run.stats.push_back(layer_step(workload.cache(), 0, shape, run.config, inputs[t].q.data(),
                                     inputs[t].k.data(), inputs[t].v.data(), state, o.data()));
      if (run.config.mode == Mode::dense) dense_out.push_back(o);
      run.error.push_back(relative_l2(o, dense_out[t]));
      outputs.push_back(o);
    }
#ifdef LOSA_WITH_CUDA
    if (use_gpu) {
      std::vector<std::vector<float>> gpu_out;
      run_mode_on_gpu(workload.cache(), shape, run.config, inputs, &gpu_out, &run.gpu_stats);
      for (int t = 0; t < opt.steps; ++t) run.gpu_error.push_back(relative_l2(gpu_out[t], outputs[t]));
    }
#endif
  }

  std::printf("\nchanged tokens per step (workload truth): ");
  for (int t = 1; t < opt.steps; ++t) std::printf("%zu ", inputs[t].changed.size());
  std::printf("\n\n%-18s %10s %12s %12s %12s  %s\n", "mode", "density", "density t>0",
              "max err", "mean err", "active tokens per step");
  nlohmann::json json_runs = nlohmann::json::array();
  for (const auto& run : runs) {
    double density = 0.0, later = 0.0, max_err = 0.0, mean_err = 0.0;
    std::string active;
    for (int t = 0; t < opt.steps; ++t) {
      density += run.stats[t].density() / opt.steps;
      if (t > 0) later += run.stats[t].density() / std::max(1, opt.steps - 1);
      max_err = std::max(max_err, run.error[t]);
      mean_err += run.error[t] / opt.steps;
      active += std::to_string(run.stats[t].active_tokens) + " ";
    }
    std::printf("%-18s %9.2f%% %11.2f%% %12.2e %12.2e  %s\n", run.label.c_str(), 100 * density,
                100 * later, max_err, mean_err, active.c_str());
    nlohmann::json steps = nlohmann::json::array();
    for (int t = 0; t < opt.steps; ++t)
      steps.push_back({{"step", t},
                       {"density", run.stats[t].density()},
                       {"active_tokens", run.stats[t].active_tokens},
                       {"kv_bytes", run.stats[t].kv_bytes},
                       {"bounds_bytes", run.stats[t].bounds_bytes},
                       {"rel_l2_error_vs_dense", run.error[t]}});
    json_runs.push_back({{"mode", run.label}, {"mean_density", density}, {"steps", steps}});
  }
  if (use_gpu) {
    std::printf("\nGPU (%s), same steps through the CUDA backend:\n%-18s %10s %12s  %s\n", gpu.c_str(),
                "mode", "density", "max err vs CPU", "active tokens per step");
    for (const auto& run : runs) {
      double density = 0.0, err = 0.0;
      std::string active;
      for (int t = 0; t < opt.steps; ++t) {
        density += run.gpu_stats[t].density() / opt.steps;
        err = std::max(err, run.gpu_error[t]);
        active += std::to_string(run.gpu_stats[t].active_tokens) + " ";
      }
      std::printf("%-18s %9.2f%% %14.2e  %s\n", run.label.c_str(), 100 * density, err, active.c_str());
    }
  } else {
    std::printf("\n(no GPU here%s: CPU reference backend only)\n",
                dt == DType::f32 ? " for f32, the GPU backend takes bf16/f16" : "");
  }
  std::printf("\ndensity: KV pages loaded / pages in the prefix, per KV head and step; err: relative "
              "L2 error of the layer output against dense.\n");
  if (!opt.json_path.empty()) {
    nlohmann::json doc = {{"workload",
                           {{"prefix_len", wc.prefix_len},
                            {"block_size", shape.block_size},
                            {"num_q_heads", shape.num_q_heads},
                            {"num_kv_heads", shape.num_kv_heads},
                            {"head_dim", shape.head_dim},
                            {"page_size", wc.page_size},
                            {"dtype", dtype_name(wc.dtype)},
                            {"seed", wc.seed}}},
                          {"budget_tokens", opt.budget_tokens},
                          {"runs", json_runs}};
    json_out << doc.dump(2) << "\n";
    close_output(json_out, opt.json_path, "--json");
    std::printf("wrote %s\n", opt.json_path.c_str());
  }
  return 0;
}

}  // namespace losa::tools
