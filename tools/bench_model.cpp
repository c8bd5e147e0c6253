// `losa bench-model`: the whole model on the GPU (CUDA backend), for an SDAR-shaped model with
// random or real weights: prefill tokens/s; the GEMMs of the prefill chunk and of a decode step
// against the card's measured bf16 peak and copy bandwidth; time per denoising step and tokens/s
// for each attention mode and batch shape, and how much of a step is attention (the same step
// timed with the attention skipped); with --stages, each mode's later steps by kernel group.
#include "bench_model.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>

#include "../src/runtime/cuda/gemm.hpp"
#include "../src/runtime/cuda/skinny_gemm.hpp"
#include "cli_errors.hpp"
#include "gpu_timer.hpp"
#include "losa/cuda/device.hpp"
#include "losa/runtime/cuda_backend.hpp"
#include "losa/runtime/decoder.hpp"

namespace losa::tools {
namespace {

using nlohmann::json;
using runtime::ModelBackend;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::vector<int32_t> random_tokens(int64_t n, uint64_t seed, int vocab) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(0, vocab - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = d(rng);
  return t;
}

struct GemmTiming {
  std::string name, kernel;
  int64_t rows, out, in;
  double us, tflops, gbps;
};

using GemmCall = std::function<void(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t rows, int64_t out,
                                    int64_t in, float* y, cudaStream_t stream)>;

// One GEMM shape on one kernel (`call`). A CUDA graph holds one GEMM per weight copy (enough
// copies to exceed 4x the L2, so every call streams its weights from memory, as a model's
// consecutive layers do); the time per GEMM is a replay's over the copies, median of `reps`
// replays after warm-up: launch gaps inside a graph count, event overhead does not.
double time_gemm(int64_t rows, int64_t n, int64_t k, int reps, size_t l2, cudaStream_t stream, const GemmCall& call) {
  const int copies = static_cast<int>(std::max<int64_t>(2, (4 * static_cast<int64_t>(l2)) / (n * k * 2) + 1));
  std::vector<cuda::DeviceBuffer> weights;
  const auto fill =
      cuda::upload_as(DType::bf16, std::vector<float>(static_cast<size_t>(std::min<int64_t>(n * k, 1 << 20)), 0.01f));
  for (int i = 0; i < copies; ++i) {
    weights.emplace_back(static_cast<size_t>(n * k * 2));
    for (int64_t at = 0; at < n * k * 2; at += fill.bytes())
      LOSA_CUDA_CHECK(cudaMemcpy(static_cast<char*>(weights.back().data()) + at, fill.data(),
                                 std::min<int64_t>(fill.bytes(), n * k * 2 - at), cudaMemcpyDeviceToDevice));
  }
  const auto x = cuda::upload_as(DType::bf16, std::vector<float>(static_cast<size_t>(rows * k), 0.5f));
  cuda::DeviceBuffer y(static_cast<size_t>(rows * n * 4));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  LOSA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < copies; ++i)
    call(static_cast<const __nv_bfloat16*>(x.data()), static_cast<const __nv_bfloat16*>(weights[i].data()), rows, n, k,
         y.as<float>(), stream);
  LOSA_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  LOSA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  EventPair ev;
  std::vector<double> t;
  for (int it = 0; it < reps + 3; ++it) {
    ev.start(stream);
    LOSA_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    ev.stop(stream);
    LOSA_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (it >= 3) t.push_back(ev.micros() / copies);
  }
  LOSA_CUDA_CHECK(cudaGraphExecDestroy(exec));
  LOSA_CUDA_CHECK(cudaGraphDestroy(graph));
  return median(t);
}

std::vector<std::tuple<std::string, int64_t, int64_t>> gemm_shapes(const runtime::ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  return {{"qkv", c.q_dim() + 2 * c.kv_dim(), H}, {"o", H, c.q_dim()}, {"gate_up", 2 * I, H}, {"down", H, I}};
}

GemmTiming timing(const std::string& name, const std::string& kernel, int64_t rows, int64_t n, int64_t k, double us) {
  return {name, kernel, rows, n, k, us, 2.0 * rows * n * k / (us * 1e6), (n * k * 2.0 + rows * k * 2.0) / (us * 1e3)};
}

// The model's GEMM shapes through runtime::cuda::Gemm with one kernel choice.
std::vector<GemmTiming> time_gemms(const runtime::ModelConfig& c, int64_t rows, int reps, size_t l2,
                                   runtime::cuda::GemmKernel kernel) {
  cudaStream_t stream;
  LOSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::vector<GemmTiming> out;
  {
    runtime::cuda::Gemm gemm(stream, kernel);
    for (const auto& [name, n, k] : gemm_shapes(c)) {
      bool skinny = false;  // Gemm's own test of each call
      const double us = time_gemm(rows, n, k, reps, l2, stream,
                                  [&](const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t r, int64_t o, int64_t i,
                                      float* y, cudaStream_t) {
                                    skinny = gemm.serves_with_decode_kernel(x, w, r, i);
                                    gemm.to_f32(x, w, r, o, i, y, false);
                                  });
      out.push_back(timing(name, skinny ? "skinny" : "cublas", rows, n, k, us));
    }
  }
  LOSA_CUDA_CHECK(cudaStreamDestroy(stream));
  return out;
}

// `--gemm-sweep`: every compiled instance of the decode-shape kernel and K splits, per shape.
json gemm_sweep(const runtime::ModelConfig& c, const std::vector<int64_t>& row_counts, size_t l2, int num_sms,
                double copy_gbps) {
  cudaStream_t stream;
  LOSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cuda::DeviceBuffer partials(size_t{8} << 20), tickets(8192 * sizeof(unsigned));
  tickets.fill_bytes(0);
  const runtime::cuda::SkinnyGemmWorkspace ws{partials.as<float>(), partials.bytes() / 4, tickets.as<unsigned>(), 8192};
  json rows_out = json::array();
  std::printf("\n%-8s %5s %3s %3s %5s %7s %3s %9s %9s %7s\n", "gemm", "rows", "nt", "kp", "warps", "splits", "", "us",
              "GB/s", "of copy");
  for (int64_t rows : row_counts)
    for (const auto& [name, n, k] : gemm_shapes(c)) {
      std::vector<runtime::cuda::SkinnyGemmConfig> configs = runtime::cuda::skinny_gemm_configs(static_cast<int>(rows));
      configs.insert(configs.begin(), runtime::cuda::SkinnyGemmConfig{});  // the automatic choice
      for (const runtime::cuda::SkinnyGemmConfig& config : configs)
        for (int splits : {0, 1, 2})
          for (bool pdl : {true, false}) {
            runtime::cuda::SkinnyGemmArgs a;
            a.rows = static_cast<int>(rows);
            a.out = static_cast<int>(n);
            a.in = static_cast<int>(k);
            a.y_f32 = true;
            a.splits = splits;
            a.config = config;
            a.programmatic = pdl;
            const bool automatic = config.nt == 0;
            const runtime::cuda::SkinnyGemmConfig cfg = runtime::cuda::skinny_gemm_choice(a, num_sms);
            const int used = runtime::cuda::skinny_gemm_splits(a, ws, num_sms);
            if (splits > 0 && used != splits) continue;
            const double us = time_gemm(rows, n, k, 10, l2, stream,
                                        [&](const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t, int64_t, int64_t,
                                            float* y, cudaStream_t s) {
                                          runtime::cuda::SkinnyGemmArgs call = a;
                                          call.x = x;
                                          call.w = w;
                                          call.y = y;
                                          runtime::cuda::launch_skinny_gemm(call, ws, num_sms, s);
                                        });
            const GemmTiming g = timing(name, "skinny", rows, n, k, us);
            std::printf("%-8s %5lld %3d %3d %5d %4d%s %3s %9.1f %9.0f %6.0f%%\n", name.c_str(),
                        static_cast<long long>(rows), cfg.nt, cfg.kp, cfg.warps, used, splits == 0 ? "(a)" : "   ",
                        pdl ? "pdl" : "", us, g.gbps, 100.0 * g.gbps / copy_gbps);
            if (automatic) std::printf("  ^ automatic instance\n");
            rows_out.push_back({{"gemm", name}, {"rows", rows}, {"out", n}, {"in", k}, {"nt", cfg.nt}, {"kp", cfg.kp},
                                {"warps", cfg.warps}, {"automatic_instance", automatic}, {"pdl", pdl},
                                {"splits", used}, {"automatic_splits", splits == 0}, {"us", us}, {"GBps", g.gbps},
                                {"share_of_copy_bandwidth", g.gbps / copy_gbps}});
            std::fflush(stdout);
          }
    }
  LOSA_CUDA_CHECK(cudaStreamDestroy(stream));
  return rows_out;
}

double peak_bf16_tflops(int reps) {
  const runtime::ModelConfig square = [] {
    runtime::ModelConfig c;
    c.hidden_size = 8192;
    c.intermediate_size = 4096;  // gate_up: 8192 x 8192
    c.num_attention_heads = 64;
    c.num_key_value_heads = 64;
    c.head_dim = 128;
    return c;
  }();
  double best = 0.0;
  for (const GemmTiming& g : time_gemms(square, 8192, reps, 0, runtime::cuda::GemmKernel::cublas))
    best = std::max(best, g.tflops);
  return best;
}

// Unmasks B / steps positions of every sequence's block after `step`, as a decode does: the
// proposals of that step's positions become tokens.
void unmask_step_positions(std::vector<int32_t>& block, const std::vector<runtime::TokenProposal>& props, int num_seqs,
                           int step, const BenchModelOptions& opt) {
  for (int s = 0; s < num_seqs; ++s)
    for (int i = step * opt.block_size / opt.steps; i < (step + 1) * opt.block_size / opt.steps; ++i)
      block[static_cast<size_t>(s) * opt.block_size + i] = props[static_cast<size_t>(s) * opt.block_size + i].token;
}

// Event marks the backend's stage hook records while a step is captured (armed only for the
// staged pass; the prefill's marks are ignored): each mark an external event-record node, in
// capture order.
struct StageMarks {
  bool armed = false;
  std::vector<std::pair<std::string, cudaEvent_t>> events;
  void mark(const char* stage, cudaStream_t stream) {
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    LOSA_CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
    if (!armed || capturing != cudaStreamCaptureStatusActive) return;
    cudaEvent_t e;
    LOSA_CUDA_CHECK(cudaEventCreate(&e));
    LOSA_CUDA_CHECK(cudaEventRecordWithFlags(e, stream, cudaEventRecordExternal));
    events.emplace_back(stage, e);
  }
  void clear() {
    for (auto& [name, e] : events) cudaEventDestroy(e);
    events.clear();
  }
  ~StageMarks() { clear(); }
};

// The later steps of `mode`, by kernel group: the mode is set again with the marks armed (its
// graphs are captured afresh, with event nodes), blocks run as the timing loop runs them, and
// each group's time is summed over the layers of a step; medians over the steps after the
// first block (whose steps include captures). A step replays one of the captured graphs (a mode
// has one per step kind: SparseD three); the one replayed is the graph whose first mark was
// recorded after an event taken just before the step, on the same device clock.
std::map<std::string, double> time_later_step_stages(ModelBackend& backend, StageMarks& marks, const ModeConfig& mode,
                                                     int num_seqs, const BenchModelOptions& opt, int32_t mask_token) {
  marks.clear();
  marks.armed = true;
  backend.set_attention_mode(mode);
  const runtime::Sampler greedy(runtime::SamplerParams{});
  std::vector<int32_t> block(static_cast<size_t>(num_seqs) * opt.block_size, mask_token);
  std::vector<runtime::SampleKey> keys(num_seqs);
  std::vector<runtime::TokenProposal> props(block.size());
  std::vector<std::pair<size_t, size_t>> graphs;  // each captured graph's marks [first, last)
  std::map<std::string, std::vector<double>> per_stage;
  cudaEvent_t before;
  LOSA_CUDA_CHECK(cudaEventCreate(&before));
  for (int rep = 0; rep < std::max(2, opt.reps); ++rep) {
    backend.begin_block();
    std::fill(block.begin(), block.end(), mask_token);
    for (int step = 0; step < opt.steps; ++step) {
      const size_t first = marks.events.size();
      LOSA_CUDA_CHECK(cudaEventRecord(before, nullptr));
      LOSA_CUDA_CHECK(cudaEventSynchronize(before));
      backend.denoise(block.data(), nullptr, greedy, keys.data(), props.data());
      if (marks.events.size() > first) graphs.emplace_back(first, marks.events.size());
      unmask_step_positions(block, props, num_seqs, step, opt);
      if (step == 0 || rep == 0) continue;
      const std::pair<size_t, size_t>* replayed = nullptr;
      for (const auto& g : graphs) {
        float ms = 0.0f;
        LOSA_CUDA_CHECK(cudaEventElapsedTime(&ms, before, marks.events[g.first].second));
        if (ms >= 0.0f) replayed = &g;
      }
      if (!replayed) throw std::runtime_error("bench-model --stages: no captured graph ran in this step");
      std::map<std::string, double> sums;
      for (size_t i = replayed->first; i + 1 < replayed->second; ++i) {
        float ms = 0.0f;
        LOSA_CUDA_CHECK(cudaEventElapsedTime(&ms, marks.events[i].second, marks.events[i + 1].second));
        sums[marks.events[i].first] += 1000.0 * ms;
      }
      for (const auto& [name, us] : sums) per_stage[name].push_back(us);
    }
  }
  cudaEventDestroy(before);
  marks.armed = false;
  backend.set_attention_mode(mode);  // graphs without the marks again
  std::map<std::string, double> out;
  for (auto& [name, t] : per_stage) out[name] = median(t);
  return out;
}

}  // namespace

int run_bench_model(const BenchModelOptions& opt, const std::string& command_line) {
  if (cuda::device_count() == 0)
    throw std::runtime_error("losa bench-model: no CUDA device here; the benchmark needs a GPU");
  std::ofstream json_out = open_output(opt.json_path, "--json");  // an unwritable path fails now
  cudaDeviceProp prop{};
  LOSA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbps = [] {
    cudaStream_t s;
    LOSA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    const double gbps = copy_bandwidth_gbps(s);
    LOSA_CUDA_CHECK(cudaStreamDestroy(s));
    return gbps;
  }();
  if (opt.gemm_sweep) {  // the decode-shape GEMM's instances and splits only: no weights, no model
    const runtime::ModelConfig c =
        runtime::load_model_config(opt.model_dir.empty() ? opt.random_weights : opt.model_dir + "/config.json");
    std::printf("losa bench-model --gemm-sweep on %s: copy bandwidth %.0f GB/s\n", prop.name, copy_gbps);
    json doc = {{"card", prop.name},
                {"device", cuda::describe_device(0)},
                {"command", command_line},
                {"copy_bandwidth_GBps", copy_gbps}};
    doc["sweep"] = gemm_sweep(c, {std::min<int64_t>(opt.block_size, runtime::cuda::kSkinnyMaxRows)}, prop.l2CacheSize,
                              prop.multiProcessorCount, copy_gbps);
    json_out << doc.dump(1) << "\n";
    close_output(json_out, opt.json_path, "--json");
    std::printf("\nwrote %s\n", opt.json_path.c_str());
    return 0;
  }
  const auto t_load = clock_type::now();
  const runtime::Weights weights = opt.model_dir.empty()
                                       ? runtime::make_random_weights(runtime::load_model_config(opt.random_weights), 1, 0)
                                       : runtime::load_checkpoint(opt.model_dir);
  const runtime::ModelConfig& c = weights.config;
  std::printf("losa bench-model on %s: %s, %d layers, hidden %lld, %d/%d heads (weights ready in %.1f s)\n", prop.name,
              weights.source.c_str(), c.num_hidden_layers, static_cast<long long>(c.hidden_size), c.num_attention_heads,
              c.num_key_value_heads, seconds_since(t_load));
  json doc = {{"card", prop.name}, {"device", cuda::describe_device(0)}, {"command", command_line},
              {"model", weights.source}, {"prefill", json::array()}, {"gemms", json::array()}, {"steps", json::array()}};

  // GEMMs: the prefill chunk's (compute-bound) and the decode steps' (weight streaming: one,
  // four and eight sequences of a block), each decode shape on cuBLAS and on the kernel the
  // model uses (the decode-shape kernel where it applies).
  const double peak = peak_bf16_tflops(10);
  doc["measured_bf16_peak_TFLOPs"] = peak;
  doc["copy_bandwidth_GBps"] = copy_gbps;
  std::printf(
      "\nmeasured bf16 GEMM peak (8192^3): %.0f TFLOP/s; copy bandwidth %.0f GB/s\n%-8s %-7s %6s "
      "%7s %7s %9s %9s %9s %7s\n",
      peak, copy_gbps, "gemm", "kernel", "rows", "out", "in", "us", "TFLOP/s", "GB/s", "of copy");
  for (int64_t rows : {static_cast<int64_t>(opt.prefill_chunk), static_cast<int64_t>(opt.block_size),
                       static_cast<int64_t>(opt.block_size) * 4, static_cast<int64_t>(opt.block_size) * 8})
    for (auto kernel : {runtime::cuda::GemmKernel::cublas, runtime::cuda::GemmKernel::automatic}) {
      if (kernel == runtime::cuda::GemmKernel::automatic && rows > runtime::cuda::kSkinnyMaxRows) continue;
      for (const GemmTiming& g : time_gemms(c, rows, 20, prop.l2CacheSize, kernel)) {
        std::printf("%-8s %-7s %6lld %7lld %7lld %9.1f %9.1f %9.0f %6.0f%%\n", g.name.c_str(), g.kernel.c_str(),
                    static_cast<long long>(g.rows), static_cast<long long>(g.out), static_cast<long long>(g.in), g.us,
                    g.tflops, g.gbps, 100.0 * g.gbps / copy_gbps);
        doc["gemms"].push_back({{"gemm", g.name}, {"kernel", g.kernel}, {"rows", g.rows}, {"out", g.out},
                                {"in", g.in}, {"us", g.us}, {"TFLOPs", g.tflops}, {"GBps", g.gbps},
                                {"share_of_peak", g.tflops / peak}, {"share_of_copy_bandwidth", g.gbps / copy_gbps}});
      }
    }

  runtime::ForwardOptions fo;
  fo.block_size = opt.block_size;
  fo.prefill_chunk = opt.prefill_chunk;
  fo.kv_dtype = DType::bf16;
  fo.keep_bounds8 = opt.bounds8;  // beside the 16-bit ones, for the +bounds8 rows
  const runtime::Sampler greedy(runtime::SamplerParams{});

  // A denoising step with its attention skipped, per batch size (attention's share of a step is
  // what the full step adds to it). A backend of its own, freed before the real one exists.
  std::map<int, double> bare_ms;
  {
    runtime::CudaBackendOptions skip_attention;
    skip_attention.attention = false;
    auto no_attention = runtime::make_cuda_backend(weights, skip_attention);
    for (const auto& batch : opt.batches) {
      const int S = batch.first;
      if (bare_ms.count(S)) continue;
      no_attention->start(std::vector<std::vector<int32_t>>(S, std::vector<int32_t>(opt.block_size, 3)),
                          std::vector<int64_t>(S, 4 * opt.block_size), fo);
      std::vector<int32_t> block(static_cast<size_t>(S) * opt.block_size, c.mask_token_id);
      std::vector<runtime::SampleKey> keys(S);
      std::vector<runtime::TokenProposal> props(block.size());
      std::vector<double> t;
      for (int rep = 0; rep < opt.reps + 2; ++rep) {
        no_attention->begin_block();
        const auto t0 = clock_type::now();
        no_attention->denoise(block.data(), nullptr, greedy, keys.data(), props.data());
        if (rep >= 2) t.push_back(seconds_since(t0) * 1e3);
      }
      bare_ms[S] = median(t);
    }
  }
  StageMarks marks;
  runtime::CudaBackendOptions backend_options;
  if (opt.stages) backend_options.stage_hook = [&marks](const char* stage, cudaStream_t s) { marks.mark(stage, s); };
  auto backend = runtime::make_cuda_backend(weights, backend_options);

  // Prefill tokens/s, one prompt at a time (host clock around start(), which synchronises).
  std::printf("\n%8s %10s %10s\n", "prefill", "seconds", "tokens/s");
  for (int64_t L : opt.prefill_lens) {
    const auto tokens = random_tokens(L / opt.block_size * opt.block_size, L, c.vocab_size);
    const auto t0 = clock_type::now();
    backend->start({tokens}, {static_cast<int64_t>(tokens.size()) + opt.block_size}, fo);
    const double s = seconds_since(t0);
    std::printf("%8lld %10.2f %10.0f\n", static_cast<long long>(L), s, tokens.size() / s);
    doc["prefill"].push_back({{"tokens", tokens.size()}, {"seconds", s}, {"tokens_per_second", tokens.size() / s}});
  }

  // Denoising steps per mode and batch: one prefill per batch, modes switched between blocks.
  std::printf("\n%-10s %-22s %12s %12s %10s %10s %8s %14s %13s\n", "batch", "mode", "step0 ms", "step ms", "tokens/s",
              "attn share", "density", "later density", "later active");
  for (const auto& [num_seqs, length] : opt.batches) {
    std::vector<std::vector<int32_t>> prompts;
    std::vector<int64_t> capacity;
    for (int s = 0; s < num_seqs; ++s) {
      const int64_t L = (length - 517 * s) / opt.block_size * opt.block_size;
      prompts.push_back(random_tokens(L, 1000 + s, c.vocab_size));
      capacity.push_back(L + 4 * opt.block_size);
    }
    runtime::ForwardOptions batch_fo = fo;
    batch_fo.prefill_chunk = opt.prefill_chunk;
    try {
      backend->start(prompts, capacity, batch_fo);
    } catch (const ArgumentError& e) {
      std::printf("%dx%lld: %s\n", num_seqs, static_cast<long long>(length), e.what());
      doc["steps"].push_back({{"num_seqs", num_seqs}, {"length", length}, {"error", e.what()}});
      continue;
    }
    std::vector<std::pair<std::string, ModeConfig>> variants;
    for (const std::string& name : opt.modes) {
      ModeConfig mode;
      mode.mode = parse_mode(name);
      mode.budget_tokens = opt.budget;
      mode.steps_per_block = opt.steps;
      mode.active_rule = ActiveRule::tau;
      variants.emplace_back(name, mode);
      if (opt.bounds8 && (mode.mode == Mode::quest || mode.mode == Mode::losa)) {
        mode.bounds8 = true;
        variants.emplace_back(name + "+bounds8", mode);
      }
    }
    for (const auto& [mode_name_str, mode] : variants) {
      backend->set_attention_mode(mode);
      std::vector<int32_t> block(static_cast<size_t>(num_seqs) * opt.block_size, c.mask_token_id);
      std::vector<runtime::SampleKey> keys(num_seqs);
      std::vector<runtime::TokenProposal> props(block.size());
      std::vector<double> step0, later;
      double density = 0.0, later_density = 0.0, later_active = 0.0;  // later: steps after the first
      int forwards = 0, later_forwards = 0;
      for (int rep = 0; rep < opt.reps; ++rep) {
        backend->begin_block();
        std::fill(block.begin(), block.end(), c.mask_token_id);
        for (int step = 0; step < opt.steps; ++step) {
          const auto t0 = clock_type::now();
          const runtime::ForwardReport r = backend->denoise(block.data(), nullptr, greedy, keys.data(), props.data());
          (step == 0 ? step0 : later).push_back(seconds_since(t0) * 1e3);
          density += r.density();
          ++forwards;
          if (step > 0) {
            later_density += r.density();
            later_active += r.active_tokens();
            ++later_forwards;
          }
          unmask_step_positions(block, props, num_seqs, step, opt);
        }
      }
      const double s0 = median(step0), st = median(later.empty() ? step0 : later), none = bare_ms[num_seqs];
      const double block_ms = s0 + (opt.steps - 1) * st;
      const double tokens_per_s = num_seqs * opt.block_size / (block_ms / 1e3);
      const double attn_share = std::max(0.0, 1.0 - none / st);
      char batch[32];
      std::snprintf(batch, sizeof(batch), "%dx%lld", num_seqs, static_cast<long long>(length));
      const double later_mean_density = later_density / std::max(later_forwards, 1);
      const double later_mean_active = later_active / std::max(later_forwards, 1);
      std::printf("%-10s %-22s %12.2f %12.2f %10.0f %9.0f%% %7.2f%% %13.2f%% %13.2f\n", batch, mode_name_str.c_str(), s0,
                  st, tokens_per_s, 100.0 * attn_share, 100.0 * density / std::max(forwards, 1),
                  100.0 * later_mean_density, later_mean_active);
      json stages_json;
      if (opt.stages) {
        const std::map<std::string, double> stages = time_later_step_stages(*backend, marks, mode, num_seqs, opt, c.mask_token_id);
        double gpu_total = 0.0;
        std::printf("  stages of %s's later steps (us, summed over layers):", mode_name_str.c_str());
        for (const auto& [name, us] : stages) {
          std::printf(" %s %.1f", name.c_str(), us);
          gpu_total += us;
        }
        std::printf("; GPU total %.2f ms against %.2f ms on the host's clock\n", gpu_total / 1e3, st);
        stages_json = stages;
      }
      doc["steps"].push_back({{"num_seqs", num_seqs}, {"length", length}, {"mode", mode_name_str}, {"bounds8", mode.bounds8},
                              {"budget_tokens", opt.budget}, {"block_size", opt.block_size}, {"steps", opt.steps},
                              {"step0_ms", s0}, {"step_ms", st}, {"step_without_attention_ms", none},
                              {"attention_share", attn_share}, {"tokens_per_second", tokens_per_s},
                              {"density", density / std::max(forwards, 1)},
                              {"later_steps_density", later_mean_density},
                              {"later_steps_active_tokens", later_mean_active}});
      if (opt.stages) doc["steps"].back()["later_step_stages_us"] = stages_json;
      std::fflush(stdout);
    }
  }
  json_out << doc.dump(1) << "\n";
  close_output(json_out, opt.json_path, "--json");
  std::printf("\nwrote %s\n", opt.json_path.c_str());
  return 0;
}

}  // namespace losa::tools
