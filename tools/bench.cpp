#include "bench.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "gpu_timer.hpp"
#include "losa/cuda/device.hpp"
#include "losa/cuda/layer_step.hpp"
#include "losa/synthetic.hpp"

namespace losa::tools {
namespace {

using nlohmann::json;

constexpr int kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16;

// Device copies of one step's inputs.
struct DeviceInputs {
  cuda::DeviceBuffer q, k, v;
};

// One layer: its own copy of the prefix (distinct addresses, so rotating layers defeats the L2)
// and its own step buffers, which captured graphs point at.
struct Layer {
  std::unique_ptr<cuda::DevicePagedKV> kv;
  cuda::DeviceBuffer q, k, v, o;
};

struct Setup {
  int prefix_len = 0, block_size = 0;
  BlockShape shape;
  PagedKVConfig kv_config;
  int num_pages = 0;
  std::vector<DeviceInputs> steps;  // inputs of the workload's steps 0, 1, 2, ...
  std::vector<Layer> layers;
  cudaStream_t stream = nullptr;
};

struct Measurement {
  std::string label;
  ModeConfig mode;
  double time_us = 0.0, p10_us = 0.0, p90_us = 0.0;
  StepStats stats;
  std::map<std::string, double> stages;  // median us per stage, launched without a graph
};

double copy_bandwidth_gbps(cudaStream_t stream) {
  const size_t bytes = size_t{1} << 30;
  cuda::DeviceBuffer a(bytes), b(bytes);
  a.fill_bytes(1);
  EventPair ev;
  std::vector<double> t;
  for (int i = 0; i < 12; ++i) {
    ev.start(stream);
    LOSA_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, stream));
    ev.stop(stream);
    LOSA_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (i >= 2) t.push_back(ev.micros());
  }
  return 2.0 * bytes / (median(t) * 1e3);  // read + write, GB/s
}

Setup make_setup(int L, int B, int max_steps, uint64_t seed, size_t l2_bytes, cudaStream_t stream) {
  Setup s;
  s.prefix_len = L;
  s.block_size = B;
  SyntheticConfig wc;
  wc.shape = BlockShape{B, kQHeads, kKvHeads, kHeadDim};
  wc.prefix_len = L;
  wc.page_size = kPageSize;
  wc.dtype = DType::bf16;
  wc.changing_tokens = std::max(1, B / 8);
  wc.seed = seed;
  SyntheticWorkload w(wc);
  s.shape = wc.shape;
  s.kv_config = w.cache().config();
  s.num_pages = w.cache().num_pages(0);
  for (int t = 0; t < max_steps; ++t) {
    w.next_step();
    s.steps.push_back({cuda::upload_as(DType::bf16, w.q()), cuda::upload_as(DType::bf16, w.k_block()),
                       cuda::upload_as(DType::bf16, w.v_block())});
  }
  const size_t layer_bytes = static_cast<size_t>(s.num_pages) * w.cache().page_kv_bytes() * kKvHeads;
  const int num_layers = static_cast<int>(std::clamp<size_t>((4 * l2_bytes + layer_bytes - 1) / layer_bytes, 2, 8));
  const size_t q_bytes = static_cast<size_t>(s.shape.num_rows()) * kHeadDim * 2;
  const size_t kv_bytes = static_cast<size_t>(B) * kKvHeads * kHeadDim * 2;
  for (int i = 0; i < num_layers; ++i) {
    Layer layer;
    layer.kv = std::make_unique<cuda::DevicePagedKV>(s.kv_config);
    layer.kv->upload(w.cache(), 0);
    layer.q = cuda::DeviceBuffer(q_bytes);
    layer.k = cuda::DeviceBuffer(kv_bytes);
    layer.v = cuda::DeviceBuffer(kv_bytes);
    layer.o = cuda::DeviceBuffer(q_bytes);
    s.layers.push_back(std::move(layer));
  }
  s.stream = stream;
  return s;
}

void load_step(Setup& s, Layer& layer, int step) {
  const DeviceInputs& in = s.steps.at(step);
  LOSA_CUDA_CHECK(cudaMemcpyAsync(layer.q.data(), in.q.data(), in.q.bytes(), cudaMemcpyDeviceToDevice, s.stream));
  LOSA_CUDA_CHECK(cudaMemcpyAsync(layer.k.data(), in.k.data(), in.k.bytes(), cudaMemcpyDeviceToDevice, s.stream));
  LOSA_CUDA_CHECK(cudaMemcpyAsync(layer.v.data(), in.v.data(), in.v.bytes(), cudaMemcpyDeviceToDevice, s.stream));
}

cuda::DeviceStepIO io_of(Layer& l) { return {l.q.data(), l.k.data(), l.v.data(), l.o.data()}; }

struct Graph {
  cudaGraphExec_t exec = nullptr;
  ~Graph() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};

void capture(Setup& s, cuda::LayerStepRunner& runner, Layer& layer, Graph& g) {
  cudaGraph_t graph;
  LOSA_CUDA_CHECK(cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal));
  runner.run(*layer.kv, io_of(layer), s.stream);
  LOSA_CUDA_CHECK(cudaStreamEndCapture(s.stream, &graph));
  LOSA_CUDA_CHECK(cudaGraphInstantiate(&g.exec, graph, 0));
  LOSA_CUDA_CHECK(cudaGraphDestroy(graph));
}

// Times the step kind that repeats within a block (LoSA t > 0, SparseD after its switch, any
// dense or quest step): each layer's step is captured once and replayed, inputs alternating
// between two consecutive steps of the workload so that LoSA always sees changed queries.
Measurement time_steady_step(Setup& s, const std::string& label, const ModeConfig& mode,
                             const BenchOptions& opt, bool with_stages) {
  Measurement m;
  m.label = label;
  m.mode = mode;
  const int R = static_cast<int>(s.layers.size());
  const int warm = mode.mode == Mode::sparsed ? sparsed_full_steps(mode) : 1;
  std::vector<std::unique_ptr<cuda::LayerStepRunner>> runners;
  std::vector<Graph> graphs(R);
  for (int r = 0; r < R; ++r) {
    runners.push_back(std::make_unique<cuda::LayerStepRunner>(s.shape, s.kv_config, mode, s.num_pages));
    for (int t = 0; t < warm; ++t) {
      load_step(s, s.layers[r], t);
      runners[r]->run(*s.layers[r].kv, io_of(s.layers[r]), s.stream);
    }
    load_step(s, s.layers[r], warm);
    LOSA_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    capture(s, *runners[r], s.layers[r], graphs[r]);
  }
  std::vector<EventPair> events(R);
  std::vector<double> times;
  for (int it = 0; it < opt.warmup + opt.reps; ++it) {
    for (int r = 0; r < R; ++r) {
      load_step(s, s.layers[r], warm + it % 2);
      events[r].start(s.stream);
      LOSA_CUDA_CHECK(cudaGraphLaunch(graphs[r].exec, s.stream));
      events[r].stop(s.stream);
    }
    LOSA_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    if (it >= opt.warmup)
      for (int r = 0; r < R; ++r) times.push_back(events[r].micros());
  }
  m.time_us = median(times);
  std::sort(times.begin(), times.end());
  m.p10_us = times[times.size() / 10];
  m.p90_us = times[times.size() * 9 / 10];
  m.stats = runners[0]->last_stats(s.stream);

  if (with_stages) {
    // The same step captured with an event between stages (event-record nodes in the graph),
    // replayed like the timed graphs: where the time goes, launch gaps included in the stage
    // that follows them.
    std::vector<cudaEvent_t> marks(16);
    for (auto& e : marks) LOSA_CUDA_CHECK(cudaEventCreate(&e));
    std::vector<std::string> names;
    runners[0]->set_stage_hook([&](const char* stage) {
      LOSA_CUDA_CHECK(cudaEventRecordWithFlags(marks.at(names.size()), s.stream, cudaEventRecordExternal));
      names.emplace_back(stage);
    });
    Graph staged;
    capture(s, *runners[0], s.layers[0], staged);
    runners[0]->set_stage_hook({});
    std::map<std::string, std::vector<double>> per_stage;
    for (int it = 0; it < opt.warmup + opt.reps; ++it) {
      load_step(s, s.layers[0], warm + it % 2);
      LOSA_CUDA_CHECK(cudaGraphLaunch(staged.exec, s.stream));
      LOSA_CUDA_CHECK(cudaStreamSynchronize(s.stream));
      if (it < opt.warmup) continue;
      for (size_t i = 0; i + 1 < names.size(); ++i) {
        float ms = 0.0f;
        LOSA_CUDA_CHECK(cudaEventElapsedTime(&ms, marks[i], marks[i + 1]));
        per_stage[names[i]].push_back(1000.0 * ms);
      }
    }
    for (auto& e : marks) cudaEventDestroy(e);
    for (auto& [name, t] : per_stage) m.stages[name] = median(t);
  }
  return m;
}

// Density of a LoSA step with exactly k active tokens (no timing).
StepStats density_of(Setup& s, const ModeConfig& mode) {
  cuda::LayerStepRunner runner(s.shape, s.kv_config, mode, s.num_pages);
  Layer& layer = s.layers[0];
  load_step(s, layer, 0);
  runner.run(*layer.kv, io_of(layer), s.stream);
  load_step(s, layer, 1);
  runner.run(*layer.kv, io_of(layer), s.stream);
  return runner.last_stats(s.stream);
}

// A whole block: step 0 (dense) then T - 1 LoSA steps over the workload's successive inputs,
// each step a graph launch timed by events; the median over repetitions of the block's sum.
double time_block(Setup& s, const ModeConfig& mode, int T, const BenchOptions& opt) {
  const int R = static_cast<int>(s.layers.size());
  std::vector<std::unique_ptr<cuda::LayerStepRunner>> runners;
  std::vector<Graph> first(R), later(R);
  for (int r = 0; r < R; ++r) {
    runners.push_back(std::make_unique<cuda::LayerStepRunner>(s.shape, s.kv_config, mode, s.num_pages));
    runners[r]->begin_block();
    capture(s, *runners[r], s.layers[r], first[r]);  // step 0
    capture(s, *runners[r], s.layers[r], later[r]);  // any step t > 0
  }
  EventPair ev;
  std::vector<double> totals;
  for (int it = 0; it < opt.warmup + std::max(5, opt.reps / 5); ++it) {
    double total = 0.0;
    for (int r = 0; r < R; ++r) {
      for (int t = 0; t < T; ++t) {
        load_step(s, s.layers[r], t);
        ev.start(s.stream);
        LOSA_CUDA_CHECK(cudaGraphLaunch((t == 0 ? first[r] : later[r]).exec, s.stream));
        ev.stop(s.stream);
        LOSA_CUDA_CHECK(cudaStreamSynchronize(s.stream));
        total += ev.micros();
      }
    }
    if (it >= opt.warmup) totals.push_back(total / R);
  }
  return median(totals);
}

json stats_json(const StepStats& st) {
  return {{"density", st.density()},
          {"active_tokens", st.active_tokens},
          {"pages_loaded", st.pages_loaded},
          {"num_pages", st.num_pages},
          {"kv_bytes", st.kv_bytes},
          {"bounds_bytes", st.bounds_bytes}};
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", std::gmtime(&now));
  return buf;
}

}  // namespace

int run_bench(const BenchOptions& opt, const std::string& command_line) {
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "losa bench: no CUDA device here; the benchmark needs a GPU\n");
    return 1;
  }
  cudaDeviceProp prop{};
  LOSA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  LOSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double copy_gbps = copy_bandwidth_gbps(stream);
  std::printf("losa bench on %s (%s): device-to-device copy %.0f GB/s (read + write)\n", prop.name,
              cuda::describe_device(0).c_str(), copy_gbps);

  json doc = {{"card", prop.name},
              {"device", cuda::describe_device(0)},
              {"date", today()},
              {"command", command_line},
              {"copy_bandwidth_GBps", copy_gbps},
              {"shape", {{"num_q_heads", kQHeads}, {"num_kv_heads", kKvHeads}, {"head_dim", kHeadDim},
                         {"page_size", kPageSize}, {"dtype", "bf16"}}},
              {"method", "median of CUDA-graph replays timed with events after warm-up; each layer's "
                         "prefix is a separate copy and layers rotate (>= 4x L2 touched); inputs "
                         "alternate between two workload steps"},
              {"results", json::array()},
              {"density_curve", json::array()},
              {"blocks", json::array()}};
  int max_block_steps = 3;
  for (int T : opt.block_steps) max_block_steps = std::max(max_block_steps, T);

  std::printf("\n%7s %3s  %-26s %10s %9s %9s %9s %8s %9s %9s\n", "L", "B", "mode", "time us",
              "density", "active", "MB read", "GB/s", "floor us", "vs dense");
  for (int L : opt.prefix_lens)
    for (int B : opt.block_sizes) {
      Setup s = make_setup(L, B, max_block_steps + 1, opt.seed, prop.l2CacheSize, stream);
      const bool headline = L == opt.headline_len && B == opt.headline_block;
      std::vector<Measurement> ms;
      auto base = [&](Mode m) {
        ModeConfig c;
        c.mode = m;
        c.steps_per_block = 16;
        c.sparsed_skip = opt.sparsed_skip;
        return c;
      };
      auto wanted = [&](const char* m) { return std::find(opt.modes.begin(), opt.modes.end(), m) != opt.modes.end(); };
      if (wanted("dense")) ms.push_back(time_steady_step(s, "dense", base(Mode::dense), opt, headline));
      for (int budget : opt.budgets) {
        ModeConfig q = base(Mode::quest);
        q.budget_tokens = budget;
        if (wanted("quest"))
          ms.push_back(time_steady_step(s, "quest b=" + std::to_string(budget), q, opt,
                                        headline && budget == opt.headline_budget));
        std::vector<int> ks = opt.k_actives;
        ks.push_back(B);
        for (int k : ks) {
          if (k > B || !wanted("losa")) continue;
          ModeConfig l = base(Mode::losa);
          l.budget_tokens = budget;
          l.active_rule = ActiveRule::top_k;
          l.k_active = k;
          const bool head = headline && budget == opt.headline_budget && k == opt.headline_active;
          ms.push_back(time_steady_step(s, "losa b=" + std::to_string(budget) + " k=" + std::to_string(k), l, opt, head));
          if (head && !opt.selection_path.empty()) {
            // The headline step's pages, for the FlexAttention baseline at the same selection.
            cuda::LayerStepRunner runner(s.shape, s.kv_config, l, s.num_pages);
            Layer& layer = s.layers[0];
            load_step(s, layer, 0);
            runner.run(*layer.kv, io_of(layer), stream);
            load_step(s, layer, 1);
            runner.run(*layer.kv, io_of(layer), stream);
            const StepDecisions d = runner.last_decisions(stream);
            json sel = {{"prefix_len", L}, {"block_size", B}, {"num_q_heads", kQHeads},
                        {"num_kv_heads", kKvHeads}, {"head_dim", kHeadDim}, {"page_size", kPageSize},
                        {"num_pages", s.num_pages}, {"active_tokens", d.tokens},
                        {"kv_head_pages", d.selection.kv_head_pages}};
            std::ofstream(opt.selection_path) << sel.dump() << "\n";
          }
        }
        ModeConfig t = base(Mode::losa);
        t.budget_tokens = budget;
        t.tau = opt.tau;
        if (wanted("tau")) ms.push_back(time_steady_step(s, "losa b=" + std::to_string(budget) + " tau=0.5", t, opt, false));
      }
      for (double sel : opt.sparsed_selects) {
        if (!wanted("sparsed")) continue;
        ModeConfig sp = base(Mode::sparsed);
        sp.sparsed_select = sel;
        char label[64];
        std::snprintf(label, sizeof(label), "sparsed select=%.1f", sel);
        ms.push_back(time_steady_step(s, label, sp, opt, headline && sel == opt.sparsed_selects.front()));
      }
      const double dense_us = wanted("dense") ? ms.front().time_us : NAN;
      for (const Measurement& m : ms) {
        const double bytes = static_cast<double>(m.stats.kv_bytes + m.stats.bounds_bytes);
        const double gbps = bytes / (m.time_us * 1e3);
        const double floor_us = bytes / (copy_gbps * 1e3);
        std::printf("%7d %3d  %-26s %10.1f %8.2f%% %9d %9.1f %8.0f %9.1f %8.2fx\n", L, B, m.label.c_str(),
                    m.time_us, 100.0 * m.stats.density(), m.stats.active_tokens, bytes / 1e6, gbps, floor_us,
                    dense_us / m.time_us);
        json r = {{"prefix_len", L}, {"block_size", B}, {"mode", mode_name(m.mode.mode)}, {"label", m.label},
                  {"budget_tokens", m.mode.budget_tokens}, {"time_us", m.time_us}, {"p10_us", m.p10_us},
                  {"p90_us", m.p90_us}, {"bytes", bytes}, {"achieved_GBps", gbps}, {"bytes_floor_us", floor_us},
                  {"speedup_vs_dense", dense_us / m.time_us}, {"stats", stats_json(m.stats)}};
        if (m.mode.mode == Mode::losa) {
          r["active_rule"] = m.mode.active_rule == ActiveRule::top_k ? "top_k" : "tau";
          r["k_active"] = m.mode.k_active;
          r["tau"] = m.mode.tau;
        }
        if (m.mode.mode == Mode::sparsed) r["select"] = m.mode.sparsed_select;
        if (!m.stages.empty()) r["stages_us"] = m.stages;
        doc["results"].push_back(r);
      }
      for (const Measurement& m : ms)
        if (!m.stages.empty()) {
          std::printf("  stages of %-22s", m.label.c_str());
          for (const auto& [name, us] : m.stages) std::printf(" %s %.1f", name.c_str(), us);
          std::printf("  (events inside the graph)\n");
        }

      if (headline && opt.density_curve) {  // Figure 3: share of the KV cache loaded against active tokens
        for (int budget : opt.budgets)
          for (int k = 1; k <= B; ++k) {
            ModeConfig l = base(Mode::losa);
            l.budget_tokens = budget;
            l.active_rule = ActiveRule::top_k;
            l.k_active = k;
            const StepStats st = density_of(s, l);
            doc["density_curve"].push_back({{"prefix_len", L}, {"block_size", B}, {"budget_tokens", budget},
                                            {"active_tokens", st.active_tokens}, {"density", st.density()}});
          }
        for (int T : opt.block_steps) {  // whole blocks: step 0 dense, then LoSA
          ModeConfig l = base(Mode::losa);
          l.budget_tokens = opt.headline_budget;
          l.tau = opt.tau;
          const double block_us = time_block(s, l, T, opt);
          const double dense_block_us = T * dense_us;
          std::printf("  block of T=%2d steps: losa tau=%.1f %.1f us (%.1f us/step) vs dense %.1f us: %.2fx\n", T,
                      opt.tau, block_us, block_us / T, dense_block_us, dense_block_us / block_us);
          doc["blocks"].push_back({{"prefix_len", L}, {"block_size", B}, {"steps", T},
                                   {"budget_tokens", opt.headline_budget}, {"tau", opt.tau},
                                   {"losa_block_us", block_us}, {"losa_us_per_step", block_us / T},
                                   {"dense_block_us", dense_block_us}, {"speedup", dense_block_us / block_us}});
        }
      }
      std::fflush(stdout);
    }
  std::ofstream(opt.json_path) << doc.dump(1) << "\n";
  std::printf("\nwrote %s\n", opt.json_path.c_str());
  LOSA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace losa::tools
