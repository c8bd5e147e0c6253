#include "demo.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "losa/layer_step.hpp"

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
  std::printf("losa demo (CPU reference backend): prefix %d tokens, block %d, %d q heads, %d kv "
              "heads, head dim %d, page %d, %s, %d steps\n",
              wc.prefix_len, wc.shape.block_size, wc.shape.num_q_heads, wc.shape.num_kv_heads,
              wc.shape.head_dim, wc.page_size, dtype_name(wc.dtype), opt.steps);
  SyntheticWorkload workload(wc);
  std::vector<DemoStep> inputs;
  const DType dt = wc.dtype;
  for (int t = 0; t < opt.steps; ++t) {
    workload.next_step();
    inputs.push_back({rounded_to(dt, workload.q()), rounded_to(dt, workload.k_block()),
                      rounded_to(dt, workload.v_block()), workload.changed_tokens()});
  }
  std::string gpu;
#ifdef LOSA_WITH_CUDA
  const bool use_gpu = opt.use_gpu && dt != DType::f32 && gpu_available(&gpu);
#else
  const bool use_gpu = false;
#endif

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
    std::ofstream(opt.json_path) << doc.dump(2) << "\n";
    std::printf("wrote %s\n", opt.json_path.c_str());
  }
  return 0;
}

}  // namespace losa::tools
