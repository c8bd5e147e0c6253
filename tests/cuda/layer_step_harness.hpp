#pragma once
// Runs one block of steps of a mode on the GPU and on the CPU reference side by side. Each step
// the CPU replays the GPU's choices (tokens, pages) after checking that they are valid choices
// under the CPU's own scores within rounding, so outputs are compared on the same selection
// even at near-ties; how often the choices differed is counted.
#include <cuda_runtime.h>

#include <algorithm>
#include <functional>

#include "gpu_test_util.hpp"
#include "losa/cuda/layer_step.hpp"
#include "losa/layer_step.hpp"

namespace losa::test {

struct StepInputs {
  std::vector<float> q, k, v;  // rounded to the cache dtype
};

struct HarnessResult {
  double max_err_o = 0.0, max_err_lse = 0.0;
  int steps = 0, differing_choices = 0;
  std::vector<StepStats> gpu_stats, cpu_stats;
  std::vector<std::vector<float>> gpu_o;  // per step
};

/// Checks that the GPU's choices at a step are valid under the CPU reference's scores.
inline void check_choices(const PagedKVCache& cache, const BlockShape& shape, const ModeConfig& mode,
                          const LayerBlockState& before, const StepInputs& in,
                          const StepDecisions& gpu, const StepDecisions& cpu, int step) {
  if (gpu.tokens != cpu.tokens) {
    // LoSA's active set: every token on one side only must be a near-tie of the boundary.
    ASSERT_EQ(mode.mode, Mode::losa) << "step " << step << ": full steps compute every token";
    const auto delta = mode.change_includes_kv
                           ? change_scores(shape, in.q.data(), before.q_ref().data(), in.k.data(),
                                           before.k_ref().data(), in.v.data(), before.v_ref().data())
                           : change_scores(shape, in.q.data(), before.q_ref().data());
    double boundary = INFINITY;
    for (int t : cpu.tokens) boundary = std::min(boundary, delta[t]);
    for (int t = 0; t < shape.block_size; ++t) {
      const bool g = std::count(gpu.tokens.begin(), gpu.tokens.end(), t) > 0;
      const bool c = std::count(cpu.tokens.begin(), cpu.tokens.end(), t) > 0;
      if (g != c) EXPECT_NEAR(delta[t], boundary, 1e-4 * boundary) << "step " << step << " token " << t;
    }
  }
  const bool quest = mode.mode == Mode::quest || (mode.mode == Mode::losa && (step > 0 || mode.losa_step0_quest));
  if (!quest || gpu.tokens.empty() || gpu.selection.row_pages.empty()) return;
  const int n = cache.num_pages(0);
  const auto scores = quest_page_scores(cache, 0, shape, in.q.data(), gpu.tokens);
  for (size_t a = 0; a < gpu.tokens.size(); ++a)
    for (int h = 0; h < shape.num_q_heads; ++h) {
      const auto& pages = gpu.selection.row_pages[gpu.tokens[a] * shape.num_q_heads + h];
      ASSERT_FALSE(pages.empty());
      ASSERT_EQ(pages.back(), n - 1) << "last page not kept";
      std::vector<int> chosen(pages.begin(), pages.end() - 1);
      const double* row = &scores[(a * shape.num_q_heads + h) * n];
      EXPECT_TRUE(valid_top_k(row, n - 1, mode.budget_tokens / cache.config().page_size, chosen,
                              1e-5 * (max_abs(row, n) + 1e-30)))
          << "step " << step << " token " << gpu.tokens[a] << " head " << h;
    }
}

/// Runs `steps` steps; `make_inputs(step)` gives each step's inputs (already rounded).
inline HarnessResult run_side_by_side(const PagedKVCache& cache, const BlockShape& shape,
                                      const ModeConfig& mode, int steps,
                                      const std::function<StepInputs(int)>& make_inputs) {
  HarnessResult result;
  const DType dtype = cache.config().dtype;
  cuda::DevicePagedKV dev(cache.config());
  dev.upload(cache, 0);
  cuda::LayerStepRunner runner(shape, cache.config(), mode, std::max(1, cache.num_pages(0)));
  LayerBlockState cpu_state;
  const size_t q_elems = static_cast<size_t>(shape.num_rows()) * shape.head_dim;
  cuda::DeviceBuffer d_o(q_elems * 2);
  for (int t = 0; t < steps; ++t) {
    const StepInputs in = make_inputs(t);
    cuda::DeviceBuffer dq = cuda::upload_as(dtype, in.q), dk = cuda::upload_as(dtype, in.k),
                       dv = cuda::upload_as(dtype, in.v);
    std::vector<uint16_t> poison(q_elems, 0x7fc0);  // NaN in bf16 (and in f16: 0x7fc0 is NaN too)
    d_o.upload(poison.data(), q_elems * 2);
    runner.run(dev, {dq.data(), dk.data(), dv.data(), d_o.data()});
    const StepStats gpu_stats = runner.last_stats();
    const StepDecisions gpu = runner.last_decisions();
    const std::vector<float> gpu_o = cuda::download_as(dtype, d_o, q_elems);
    std::vector<float> gpu_lse(shape.num_rows());
    runner.prefix_lse().download(gpu_lse.data(), gpu_lse.size() * 4);

    LayerBlockState own_state = cpu_state;  // the CPU's own choices, for the validity check
    std::vector<float> own_o(q_elems);
    StepDecisions cpu;
    layer_step(cache, 0, shape, mode, in.q.data(), in.k.data(), in.v.data(), own_state, own_o.data(), nullptr, &cpu);
    check_choices(cache, shape, mode, cpu_state, in, gpu, cpu, t);
    // An empty prefix has no pages whichever way the rows are listed.
    const bool no_pages = cache.num_pages(0) == 0;
    const bool same = gpu.tokens == cpu.tokens &&
                      (no_pages || (gpu.selection.kv_head_pages == cpu.selection.kv_head_pages &&
                                    gpu.selection.row_pages == cpu.selection.row_pages));
    if (!same) ++result.differing_choices;

    std::vector<float> cpu_o(q_elems);
    const StepStats cpu_stats = layer_step(cache, 0, shape, mode, in.q.data(), in.k.data(), in.v.data(),
                                           cpu_state, cpu_o.data(), &gpu, nullptr);
    result.max_err_o = std::max(result.max_err_o, rel_l2(gpu_o, cpu_o));
    // The cached prefix lse of every row (fresh or kept) matches; an empty prefix gives -inf.
    const auto& cpu_lse = cpu_state.prefix_lse();
    bool all_inf = true;
    for (size_t r = 0; r < cpu_lse.size(); ++r) {
      if (std::isinf(cpu_lse[r])) EXPECT_EQ(gpu_lse[r], cpu_lse[r]) << "row " << r;
      else all_inf = false;
    }
    if (!all_inf) result.max_err_lse = std::max(result.max_err_lse, rel_l2(gpu_lse, cpu_lse));
    EXPECT_EQ(gpu_stats.pages_loaded, cpu_stats.pages_loaded) << "step " << t;
    EXPECT_EQ(gpu_stats.active_tokens, cpu_stats.active_tokens) << "step " << t;
    EXPECT_EQ(gpu_stats.kv_bytes, cpu_stats.kv_bytes) << "step " << t;
    EXPECT_EQ(gpu_stats.bounds_bytes, cpu_stats.bounds_bytes) << "step " << t;
    result.gpu_stats.push_back(gpu_stats);
    result.cpu_stats.push_back(cpu_stats);
    result.gpu_o.push_back(gpu_o);
    ++result.steps;
  }
  return result;
}

}  // namespace losa::test
