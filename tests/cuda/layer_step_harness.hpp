#pragma once
// Runs one block of steps of a mode on the GPU and on the CPU reference side by side. Each step
// the CPU replays the GPU's choices (tokens, pages) after checking that they are valid choices
// under the CPU's own scores within rounding, and equal to the CPU's own wherever the CPU's
// choice is separated from the next candidate by more than the rounding; outputs are then
// compared on the same selection, per row and as a whole.
#include <cuda_runtime.h>

#include <algorithm>
#include <functional>

#include "gpu_test_util.hpp"
#include "losa/attention_state.hpp"
#include "losa/cuda/layer_step.hpp"
#include "losa/layer_step.hpp"

namespace losa::test {

struct StepInputs {
  std::vector<float> q, k, v;  // rounded to the cache dtype
};

struct HarnessResult {
  double max_err_o = 0.0, max_row_err_o = 0.0, max_err_lse = 0.0;
  int steps = 0, differing_choices = 0;
  std::vector<StepStats> gpu_stats, cpu_stats;
  std::vector<std::vector<float>> gpu_o;  // per step
};

/// The chosen rows of LoSA's active set are valid under the CPU's change scores, and equal to
/// the CPU's where the boundary is clear.
inline void check_active_set(const BlockShape& shape, const ModeConfig& mode, const LayerBlockState& before,
                             const StepInputs& in, const StepDecisions& gpu, const StepDecisions& cpu, int step) {
  if (gpu.tokens == cpu.tokens) return;
  ASSERT_EQ(mode.mode, Mode::losa) << "step " << step << ": full steps compute every token";
  const auto delta = mode.change_includes_kv
                         ? change_scores(shape, in.q.data(), before.q_ref().data(), in.k.data(), before.k_ref().data(),
                                         in.v.data(), before.v_ref().data())
                         : change_scores(shape, in.q.data(), before.q_ref().data());
  // The change where the rule draws its line: delta_min's threshold, else the smallest taken.
  double boundary = INFINITY;
  for (int t : cpu.tokens) boundary = std::min(boundary, delta[t]);
  if (mode.active_rule == ActiveRule::delta_min) boundary = mode.delta_min;
  for (int t = 0; t < shape.block_size; ++t) {
    const bool g = std::count(gpu.tokens.begin(), gpu.tokens.end(), t) > 0;
    const bool c = std::count(cpu.tokens.begin(), cpu.tokens.end(), t) > 0;
    if (g != c) EXPECT_NEAR(delta[t], boundary, 1e-4 * boundary) << "step " << step << " token " << t;
  }
}

/// Every row's pages (attend=own) are a valid top-k of the CPU's scores; where the CPU's k-th
/// and (k+1)-th scores are apart by more than the tolerance, the sets are equal.
inline void check_quest_rows(const PagedKVCache& cache, int seq, const BlockShape& shape, const ModeConfig& mode,
                             const StepInputs& in, const StepDecisions& gpu, const StepDecisions& cpu, int step) {
  if (gpu.tokens.empty() || gpu.selection.row_pages.empty()) return;
  const int n = cache.num_pages(seq), k = mode.budget_tokens / cache.config().page_size;
  const auto scores = quest_page_scores(cache, seq, shape, in.q.data(), gpu.tokens, mode.bounds8);
  for (size_t a = 0; a < gpu.tokens.size(); ++a)
    for (int h = 0; h < shape.num_q_heads; ++h) {
      const int row = gpu.tokens[a] * shape.num_q_heads + h;
      const auto& pages = gpu.selection.row_pages[row];
      if (n == 0) {
        EXPECT_TRUE(pages.empty());
        continue;
      }
      ASSERT_FALSE(pages.empty());
      ASSERT_EQ(pages.back(), n - 1) << "last page not kept";
      std::vector<int> chosen(pages.begin(), pages.end() - 1);
      const double* r = &scores[(a * shape.num_q_heads + h) * n];
      const double tol = 1e-5 * (max_abs(r, n) + 1e-30);
      EXPECT_TRUE(valid_top_k(r, n - 1, k, chosen, tol)) << "step " << step << " token " << gpu.tokens[a] << " head " << h;
      if (well_separated_top_k(r, n - 1, k, tol) && !cpu.selection.row_pages.empty() &&
          std::count(cpu.tokens.begin(), cpu.tokens.end(), gpu.tokens[a]))
        EXPECT_EQ(pages, cpu.selection.row_pages[row]) << "step " << step << " row " << row << ": clear top-k differs";
    }
}

/// The merged (prefix + block) lse of every row over the whole prefix: SparseD's normaliser.
inline std::vector<float> full_lse(const PagedKVCache& cache, int seq, const BlockShape& shape, const StepInputs& in,
                                   float scale) {
  const size_t qn = static_cast<size_t>(shape.num_rows()) * shape.head_dim;
  std::vector<float> po(qn), plse(shape.num_rows()), bo(qn), blse(shape.num_rows()), o(shape.head_dim), lse(shape.num_rows());
  std::vector<int> all(shape.block_size);
  for (int t = 0; t < shape.block_size; ++t) all[t] = t;
  prefix_attention(cache, seq, shape, in.q.data(), all, select_all_pages(cache.num_pages(seq), shape.num_kv_heads), scale,
                   po.data(), plse.data());
  block_attention(shape, in.q.data(), in.k.data(), in.v.data(), scale, bo.data(), blse.data());
  for (int r = 0; r < shape.num_rows(); ++r)
    merge_state(&po[static_cast<size_t>(r) * shape.head_dim], plse[r], &bo[static_cast<size_t>(r) * shape.head_dim],
                blse[r], shape.head_dim, o.data(), &lse[r]);
  return lse;
}

/// SparseD's pages after its switch: each head's pages (attend=own) are a valid top-k of the
/// CPU's attention mass; where every head's choice is clear, the GPU's lists equal the CPU's.
inline void check_sparsed_selection(const PagedKVCache& cache, int seq, const BlockShape& shape, const ModeConfig& mode,
                                    const std::vector<double>& mass, const StepDecisions& gpu, const StepDecisions& cpu) {
  const int n = cache.num_pages(seq), kept = sparsed_pages_kept(n, mode.sparsed_select);
  if (n == 0) return;
  bool all_clear = true;
  for (int h = 0; h < shape.num_q_heads; ++h) {
    const double* r = &mass[static_cast<size_t>(h) * n];
    const double tol = 1e-3 * (max_abs(r, n) + 1e-30);  // masses from bf16 scores: ~1e-3 relative
    all_clear = all_clear && well_separated_top_k(r, n, kept, tol);
    if (!gpu.selection.row_pages.empty())
      EXPECT_TRUE(valid_top_k(r, n, kept, gpu.selection.row_pages[h], tol)) << "head " << h;
  }
  for (int kvh = 0; kvh < shape.num_kv_heads; ++kvh)
    EXPECT_LE(gpu.selection.kv_head_pages[kvh].size(), static_cast<size_t>(kept) * shape.group_size());
  if (all_clear) {
    EXPECT_EQ(gpu.selection.kv_head_pages, cpu.selection.kv_head_pages) << "clear SparseD selection differs";
    EXPECT_EQ(gpu.selection.row_pages, cpu.selection.row_pages) << "clear SparseD selection differs";
  }
}

/// Runs `steps` steps; `make_inputs(step)` gives each step's inputs (already rounded).
inline HarnessResult run_side_by_side(const PagedKVCache& cache, const BlockShape& shape, const ModeConfig& mode,
                                      int steps, const std::function<StepInputs(int)>& make_inputs,
                                      const cuda::EngineOptions& options = {}) {
  HarnessResult result;
  const DType dtype = cache.config().dtype;
  cuda::DevicePagedKV dev(cache.config());
  dev.upload(cache, 0);
  cuda::LayerStepRunner runner(shape, cache.config(), mode, std::max(1, cache.num_pages(0)), options);
  LayerBlockState cpu_state;
  const size_t q_elems = static_cast<size_t>(shape.num_rows()) * shape.head_dim;
  const float scale = mode.softmax_scale > 0.0f ? mode.softmax_scale : shape.default_scale();
  cuda::DeviceBuffer d_o(q_elems * 2);
  std::vector<double> switch_mass;
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
    const std::vector<float> gpu_lse = runner.prefix_lse();

    // The CPU's own choices and statistics, for the checks that must not replay the GPU's.
    LayerBlockState own_state = cpu_state;
    std::vector<float> own_o(q_elems);
    StepDecisions cpu;
    const StepStats own_stats =
        layer_step(cache, 0, shape, mode, in.q.data(), in.k.data(), in.v.data(), own_state, own_o.data(), nullptr, &cpu);
    check_active_set(shape, mode, cpu_state, in, gpu, cpu, t);
    const bool quest = mode.mode == Mode::quest || (mode.mode == Mode::losa && (t > 0 || mode.losa_step0_quest));
    if (quest) check_quest_rows(cache, 0, shape, mode, in, gpu, cpu, t);
    if (mode.mode == Mode::sparsed && t == sparsed_full_steps(mode))
      check_sparsed_selection(cache, 0, shape, mode, switch_mass, gpu, cpu);
    if (mode.mode == Mode::sparsed && t == sparsed_full_steps(mode) - 1)
      switch_mass = sparsed_page_mass(cache, 0, shape, in.q.data(), full_lse(cache, 0, shape, in, scale).data(), scale);
    // An empty prefix has no pages whichever way the rows are listed.
    const bool no_pages = cache.num_pages(0) == 0;
    const bool same = gpu.tokens == cpu.tokens && (no_pages || (gpu.selection.kv_head_pages == cpu.selection.kv_head_pages &&
                                                                gpu.selection.row_pages == cpu.selection.row_pages));
    if (!same) ++result.differing_choices;
    if (same) {  // the device's own statistics against the CPU's own (not a replay of the GPU's)
      EXPECT_EQ(gpu_stats.pages_loaded, own_stats.pages_loaded) << "step " << t;
      EXPECT_EQ(gpu_stats.active_tokens, own_stats.active_tokens) << "step " << t;
      EXPECT_EQ(gpu_stats.kv_bytes, own_stats.kv_bytes) << "step " << t;
      EXPECT_EQ(gpu_stats.bounds_bytes, own_stats.bounds_bytes) << "step " << t;
    }

    std::vector<float> cpu_o(q_elems);
    const StepStats cpu_stats =
        layer_step(cache, 0, shape, mode, in.q.data(), in.k.data(), in.v.data(), cpu_state, cpu_o.data(), &gpu, nullptr);
    result.max_err_o = worst(result.max_err_o, rel_l2(gpu_o, cpu_o));
    for (int r = 0; r < shape.num_rows(); ++r)
      result.max_row_err_o = worst(result.max_row_err_o,
                                   rel_l2(&gpu_o[static_cast<size_t>(r) * shape.head_dim],
                                          &cpu_o[static_cast<size_t>(r) * shape.head_dim], shape.head_dim));
    // The cached prefix lse of every row (fresh or kept) matches; an empty prefix gives -inf.
    const auto& cpu_lse = cpu_state.prefix_lse();
    bool all_inf = true;
    for (size_t r = 0; r < cpu_lse.size(); ++r) {
      if (std::isinf(cpu_lse[r])) EXPECT_EQ(gpu_lse[r], cpu_lse[r]) << "row " << r;
      else all_inf = false;
    }
    if (!all_inf) result.max_err_lse = worst(result.max_err_lse, rel_l2(gpu_lse, cpu_lse));
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
