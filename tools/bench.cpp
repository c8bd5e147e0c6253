#include "bench.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../src/cuda/launchers.hpp"
#include "bench_rig.hpp"
#include "cli_errors.hpp"
#include "gpu_timer.hpp"
#include "losa/cuda/device.hpp"

namespace losa::tools {
namespace {

using nlohmann::json;

constexpr int64_t kRigBudgetBytes = int64_t{24} << 30;  // KV copies one configuration may hold

json stats_json(const Measurement& m) {
  json per_seq = json::array();
  for (const StepStats& st : m.stats)
    per_seq.push_back({{"density", st.density()}, {"active_tokens", st.active_tokens}, {"num_pages", st.num_pages},
                       {"pages_loaded", st.pages_loaded}, {"kv_bytes", st.kv_bytes}, {"bounds_bytes", st.bounds_bytes}});
  return per_seq;
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", std::gmtime(&now));
  return buf;
}

int layers_that_fit(int64_t layer_bytes, int wanted) {
  return static_cast<int>(std::clamp<int64_t>(kRigBudgetBytes / std::max<int64_t>(layer_bytes, 1), 2, wanted));
}

ModeConfig base_mode(Mode m, const BenchOptions& opt) {
  ModeConfig c;
  c.mode = m;
  c.steps_per_block = 16;
  c.sparsed_skip = opt.sparsed_skip;
  c.attend = opt.attend == "union" ? Attend::union_ : Attend::own;
  return c;
}

struct Table {
  const BenchOptions& opt;
  double copy_gbps;
  json& results;

  void print_header() const {
    std::printf("\n%7s %3s %2s  %-28s %10s %9s %7s %9s %8s %9s %9s\n", "L", "B", "S", "mode", "time us", "density",
                "active", "MB read", "GB/s", "floor us", "vs dense");
  }
  void add(const std::string& config, int L, int B, const std::vector<Measurement>& ms) {
    const double dense_us = !ms.empty() && ms.front().mode.mode == Mode::dense ? ms.front().time_us : NAN;
    for (const Measurement& m : ms) {
      const double bytes = static_cast<double>(m.bytes());
      const double gbps = bytes / (m.time_us * 1e3), floor_us = bytes / (copy_gbps * 1e3);
      // Without a dense row (--modes without dense) there is no ratio: "-", not "nanx".
      char ratio[16] = "-";
      if (!std::isnan(dense_us)) std::snprintf(ratio, sizeof ratio, "%.2fx", dense_us / m.time_us);
      std::printf("%7d %3d %2d  %-28s %10.1f %8.2f%% %7.1f %9.1f %8.0f %9.1f %9s\n", L, B, m.num_seqs,
                  m.label.c_str(), m.time_us, 100.0 * m.density(), m.active_tokens(), bytes / 1e6, gbps, floor_us,
                  ratio);
      json r = {{"config", config},          {"prefix_len", L},
                {"block_size", B},           {"num_seqs", m.num_seqs},
                {"mode", mode_name(m.mode.mode)}, {"label", m.label},
                {"budget_tokens", m.mode.budget_tokens}, {"bounds8", m.mode.bounds8},
                {"time_us", m.time_us},      {"p10_us", m.p10_us},
                {"p90_us", m.p90_us},        {"layers_rotated", m.layers},
                {"bytes", bytes},            {"achieved_GBps", gbps},
                {"bytes_floor_us", floor_us}, {"speedup_vs_dense", dense_us / m.time_us},
                {"density", m.density()},    {"active_tokens", m.active_tokens()},
                {"stats", stats_json(m)},    {"workspace_bytes", m.workspace_bytes},
                {"layer_state_bytes", m.layer_state_bytes},
                // What ran for the unmasked rows (dense, union) at this block size (32 q heads on
                // 8 KV heads: 4 B rows a KV head); the masked instances always use mma.sync.
                {"unmasked_attention_mma", cuda::attention_uses_wgmma(B * 4) ? "wgmma" : "mma.sync"}};
      if (m.mode.mode == Mode::losa) {
        r["active_rule"] = active_rule_name(m.mode.active_rule);
        r["k_active"] = m.mode.k_active;
        r["tau"] = m.mode.tau;
        r["delta_min"] = m.mode.delta_min;
        r["complement"] = m.mode.losa_complement;
      }
      if (m.mode.mode == Mode::sparsed) r["select"] = m.mode.sparsed_select;
      if (!m.stages.empty()) r["stages_us"] = m.stages;
      results.push_back(r);
    }
    for (const Measurement& m : ms)
      if (!m.stages.empty()) {
        std::printf("  stages of %-24s", m.label.c_str());
        for (const auto& [name, us] : m.stages) std::printf(" %s %.1f", name.c_str(), us);
        std::printf("  (events inside the graph)\n");
      }
    std::fflush(stdout);
  }
};

ModeConfig losa_k(const BenchOptions& opt, int budget, int k) {
  ModeConfig l = base_mode(Mode::losa, opt);
  l.budget_tokens = budget;
  l.active_rule = ActiveRule::top_k;
  l.k_active = k;
  return l;
}

}  // namespace

int run_bench(const BenchOptions& opt, const std::string& command_line) {
  if (opt.force_splits < 0 || opt.force_splits > cuda::kMaxAttentionSplits)
    bad_flag("--splits", "must be in [0, " + std::to_string(cuda::kMaxAttentionSplits) +
                             "] (0: the plan's choice), got " + std::to_string(opt.force_splits));
  if (opt.attend != "own" && opt.attend != "union")
    bad_flag("--attend", "must be own or union, got '" + opt.attend + "'");
  if (opt.force_stages != 0 && opt.force_stages != 2 && opt.force_stages != 3)
    bad_flag("--attention-stages", "must be 0 (the device's choice), 2 or 3, got " + std::to_string(opt.force_stages));
  if (opt.attention_mma != "auto" && opt.attention_mma != "sync" && opt.attention_mma != "wgmma")
    bad_flag("--attention-mma", "must be auto, sync or wgmma, got '" + opt.attention_mma + "'");
  for (const std::string& m : opt.modes)
    if (m != "dense" && m != "quest" && m != "losa" && m != "tau" && m != "sparsed" && m != "complement")
      bad_flag("--modes", "must name dense, quest, losa, tau, sparsed or complement, got '" + m + "'");
  if (cuda::device_count() == 0)
    throw std::runtime_error("losa bench: no CUDA device here; the benchmark needs a GPU");
  try {
    cuda::force_attention_stages(opt.force_stages);  // before any plan: the plan sizes splits by it
  } catch (const ArgumentError& e) {
    bad_flag("--attention-stages", reason_of(e));
  }
  try {
    cuda::force_attention_mma(opt.attention_mma == "sync"    ? cuda::AttentionMma::mma_sync
                              : opt.attention_mma == "wgmma" ? cuda::AttentionMma::wgmma
                                                             : cuda::AttentionMma::automatic);
  } catch (const ArgumentError& e) {
    bad_flag("--attention-mma", reason_of(e));
  }
  std::ofstream json_out = open_output(opt.json_path, "--json");  // an unwritable path fails now
  cudaDeviceProp prop{};
  LOSA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  LOSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double copy_gbps = copy_bandwidth_gbps(stream);
  const size_t l2 = prop.l2CacheSize;
  std::printf("losa bench on %s (%s): device-to-device copy %.0f GB/s (read + write)\n", prop.name,
              cuda::describe_device(0).c_str(), copy_gbps);
  json doc = {{"card", prop.name},
              {"device", cuda::describe_device(0)},
              {"date", today()},
              {"command", command_line},
              {"copy_bandwidth_GBps", copy_gbps},
              {"forced_splits", opt.force_splits},
              {"attend", opt.attend},
              {"attention_pipeline_stages", cuda::attention_stages(DType::bf16, 128)},
              {"attention_mma", opt.attention_mma},
              {"attention_wgmma_available", cuda::attention_wgmma_available()},
              {"shape", {{"num_q_heads", 32}, {"num_kv_heads", 8}, {"head_dim", 128}, {"page_size", 16}, {"dtype", "bf16"}}},
              {"method", "per layer-step: median of CUDA-graph replays (events) after warm-up; a graph holds as many "
                         "consecutive layer-steps, each over its own copy of the prefix, as make the mode read >= 4x "
                         "the L2; inputs alternate between two workload steps"},
              {"results", json::array()},
              {"density_curve", json::array()},
              {"blocks", json::array()},
              {"model_step", json::array()}};
  Table table{opt, copy_gbps, doc["results"]};
  auto wanted = [&](const char* m) { return std::find(opt.modes.begin(), opt.modes.end(), m) != opt.modes.end(); };
  int max_block_steps = 3;
  for (int T : opt.block_steps) max_block_steps = std::max(max_block_steps, T);
  const int rig_steps = std::max(8, max_block_steps + 2);

  table.print_header();
  for (int L : opt.prefix_lens)
    for (int B : opt.block_sizes) {
      const bool headline = L == opt.headline_len && B == opt.headline_block;
      RigConfig rc;
      rc.prefix_lens = {L};
      rc.block_size = B;
      rc.max_steps = rig_steps;
      rc.keep_bounds8 = opt.bounds8 && headline;
      rc.seed = opt.seed;
      rc.engine.force_num_splits = opt.force_splits;
      rc.num_layers = layers_that_fit(int64_t{L} * 2 * 8 * 128 * 2, 64);
      BenchRig rig(rc, stream);
      std::vector<Measurement> ms;
      auto time = [&](const std::string& label, const ModeConfig& mode, bool stages) {
        ms.push_back(rig.time_steady_step(label, mode, opt.reps, opt.warmup, 0, stages, l2));
      };
      if (wanted("dense")) time("dense", base_mode(Mode::dense, opt), headline);
      for (int budget : opt.budgets) {
        const bool head_budget = headline && budget == opt.headline_budget;
        ModeConfig q = base_mode(Mode::quest, opt);
        q.budget_tokens = budget;
        if (wanted("quest")) time("quest b=" + std::to_string(budget), q, head_budget);
        std::vector<int> ks = opt.k_actives;
        ks.push_back(B);
        for (int k : ks) {
          if (k > B || !(wanted("losa") || wanted("complement"))) continue;
          const ModeConfig l = losa_k(opt, budget, k);
          const bool head = head_budget && k == opt.headline_active;
          if (wanted("losa")) time("losa b=" + std::to_string(budget) + " k=" + std::to_string(k), l, head);
          if (wanted("complement") && k < B) {  // the second pass of the step-0 queries and the complement kernel
            ModeConfig c = l;
            c.losa_complement = true;
            time("losa b=" + std::to_string(budget) + " k=" + std::to_string(k) + " complement", c, head);
          }
          if (head && !opt.selection_path.empty()) {  // the pages, for the FlexAttention baseline
            const StepDecisions d = rig.decisions_of(l);
            json sel = {{"prefix_len", L}, {"block_size", B}, {"num_q_heads", 32}, {"num_kv_heads", 8},
                        {"head_dim", 128}, {"page_size", 16}, {"num_pages", (L + 15) / 16},
                        {"active_tokens", d.tokens}, {"kv_head_pages", d.selection.kv_head_pages}};
            std::ofstream out = open_output(opt.selection_path, "--selection");
            out << sel.dump() << "\n";
            close_output(out, opt.selection_path, "--selection");
          }
          if (head && rc.keep_bounds8) {  // 8-bit bounds beside fp, same configuration
            ModeConfig l8 = l;
            l8.bounds8 = true;
            time("losa b=" + std::to_string(budget) + " k=" + std::to_string(k) + " b8", l8, true);
            ModeConfig q8 = q;
            q8.bounds8 = true;
            if (wanted("quest")) time("quest b=" + std::to_string(budget) + " b8", q8, true);
          }
        }
        ModeConfig t = base_mode(Mode::losa, opt);
        t.budget_tokens = budget;
        t.tau = opt.tau;
        if (wanted("tau")) time("losa b=" + std::to_string(budget) + " tau=0.5", t, false);
      }
      for (double sel : opt.sparsed_selects) {
        if (!wanted("sparsed")) continue;
        ModeConfig sp = base_mode(Mode::sparsed, opt);
        sp.sparsed_select = sel;
        char label[64];
        std::snprintf(label, sizeof(label), "sparsed select=%.1f", sel);
        time(label, sp, headline && sel == opt.sparsed_selects.front());
      }
      table.add("single", L, B, ms);

      if (headline && opt.density_curve) {  // Figure 3: share of the KV cache loaded against active tokens
        for (int budget : opt.budgets)
          for (int k = 1; k <= B; ++k) {
            const StepStats st = rig.stats_of(losa_k(opt, budget, k)).front();
            doc["density_curve"].push_back({{"prefix_len", L}, {"block_size", B}, {"budget_tokens", budget},
                                            {"active_tokens", st.active_tokens}, {"density", st.density()}});
          }
        const double dense_us = ms.front().mode.mode == Mode::dense ? ms.front().time_us : NAN;
        for (int T : opt.block_steps) {  // whole blocks: step 0 dense, then LoSA
          ModeConfig l = base_mode(Mode::losa, opt);
          l.budget_tokens = opt.headline_budget;
          l.tau = opt.tau;
          const double block_us = rig.time_block(l, T, std::max(5, opt.reps / 5), opt.warmup);
          const double dense_block_us = T * dense_us;
          std::printf("  block of T=%2d steps: losa tau=%.1f %.1f us (%.1f us/step) vs dense %.1f us: %.2fx\n", T,
                      opt.tau, block_us, block_us / T, dense_block_us, dense_block_us / block_us);
          doc["blocks"].push_back({{"prefix_len", L}, {"block_size", B}, {"steps", T},
                                   {"budget_tokens", opt.headline_budget}, {"tau", opt.tau},
                                   {"losa_block_us", block_us}, {"losa_us_per_step", block_us / T},
                                   {"dense_block_us", dense_block_us}, {"speedup", dense_block_us / block_us}});
        }
      }
    }

  if (opt.batch_seqs > 0) {  // a batch of sequences of different lengths, one set of launches
    RigConfig rc;
    for (int s = 0; s < opt.batch_seqs; ++s) rc.prefix_lens.push_back(opt.batch_len - 517 * s);
    rc.block_size = opt.headline_block;
    rc.max_steps = rig_steps;
    rc.seed = opt.seed + 100;
    rc.engine.force_num_splits = opt.force_splits;
    int64_t tokens = 0;
    for (int L : rc.prefix_lens) tokens += L;
    const int model_layers = opt.model_layers;
    rc.num_layers = std::max(layers_that_fit(tokens * 2 * 8 * 128 * 2, 16), model_layers);
    BenchRig rig(rc, stream);
    std::vector<Measurement> ms;
    // With the stage breakdown: where a batch's time goes differs from one sequence's.
    ms.push_back(rig.time_steady_step("dense", base_mode(Mode::dense, opt), opt.reps, opt.warmup, 0, true, l2));
    ModeConfig q = base_mode(Mode::quest, opt);
    q.budget_tokens = opt.headline_budget;
    ms.push_back(rig.time_steady_step("quest b=" + std::to_string(q.budget_tokens), q, opt.reps, opt.warmup, 0, true, l2));
    for (int k : {1, opt.headline_active})
      ms.push_back(rig.time_steady_step("losa b=" + std::to_string(opt.headline_budget) + " k=" + std::to_string(k),
                                        losa_k(opt, opt.headline_budget, k), opt.reps, opt.warmup, 0, true, l2));
    std::printf("\nbatch of %d sequences of %d..%d tokens (B = %d):\n", opt.batch_seqs, rc.prefix_lens.back(),
                rc.prefix_lens.front(), rc.block_size);
    table.add("batch", opt.batch_len, rc.block_size, ms);

    if (model_layers > 0) {  // a whole model's attention step: every layer in one graph
      std::printf("\nwhole-model attention step: %d layers x %d sequences (%.1f GB of K/V), one graph:\n", model_layers,
                  opt.batch_seqs, static_cast<double>(rig.layer_kv_bytes()) * model_layers / 1e9);
      std::vector<Measurement> whole;
      whole.push_back(rig.time_steady_step("dense", base_mode(Mode::dense, opt), std::max(5, opt.reps / 5), 2,
                                           model_layers, false, l2));
      whole.push_back(rig.time_steady_step("losa b=" + std::to_string(opt.headline_budget) + " k=" +
                                               std::to_string(opt.headline_active),
                                           losa_k(opt, opt.headline_budget, opt.headline_active),
                                           std::max(5, opt.reps / 5), 2, model_layers, false, l2));
      for (const Measurement& m : whole) {
        const double step_us = m.time_us * model_layers;
        std::printf("  %-20s %9.1f us per step (%d layers), workspace %.1f MB once, layer state %.2f MB x %d\n",
                    m.label.c_str(), step_us, model_layers, m.workspace_bytes / 1e6, m.layer_state_bytes / 1e6,
                    model_layers);
        doc["model_step"].push_back({{"label", m.label}, {"layers", model_layers}, {"num_seqs", opt.batch_seqs},
                                     {"step_us", step_us}, {"per_layer_us", m.time_us},
                                     {"kv_bytes_total", rig.layer_kv_bytes() * model_layers},
                                     {"workspace_bytes", m.workspace_bytes},
                                     {"layer_state_bytes", m.layer_state_bytes},
                                     {"engine_bytes", m.workspace_bytes + m.layer_state_bytes * model_layers},
                                     {"density", m.density()}});
      }
    }
  }
  json_out << doc.dump(1) << "\n";
  close_output(json_out, opt.json_path, "--json");
  std::printf("\nwrote %s\n", opt.json_path.c_str());
  LOSA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace losa::tools
