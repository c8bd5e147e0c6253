#include "bench_rig.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include <nvtx3/nvToolsExt.h>

#include "gpu_timer.hpp"

namespace losa::tools {

namespace {
constexpr int kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kPageSize = 16;

// Token-major raw bf16 K or V of a cache's sequence 0: [L, Hk, D].
std::vector<uint16_t> token_major(const PagedKVCache& cache, bool values) {
  const PagedKVConfig& c = cache.config();
  const int L = cache.kv_len(0), P = c.page_size, Hk = c.num_kv_heads, D = c.head_dim;
  std::vector<uint16_t> out(static_cast<size_t>(L) * Hk * D);
  const auto* pool = static_cast<const uint16_t*>(values ? cache.values_data() : cache.keys_data());
  for (int t = 0; t < L; ++t) {
    const int phys = cache.page_id(0, t / P);
    for (int h = 0; h < Hk; ++h)
      std::memcpy(&out[(static_cast<size_t>(t) * Hk + h) * D], pool + ((static_cast<size_t>(phys) * Hk + h) * P + t % P) * D,
                  D * 2);
  }
  return out;
}
}  // namespace

int64_t Measurement::bytes() const {
  int64_t b = 0;
  for (const StepStats& s : stats) b += s.kv_bytes + s.bounds_bytes;
  return b;
}
double Measurement::density() const {
  double d = 0.0;
  for (const StepStats& s : stats) d += s.density();
  return stats.empty() ? 0.0 : d / stats.size();
}
double Measurement::active_tokens() const {
  double a = 0.0;
  for (const StepStats& s : stats) a += s.active_tokens;
  return stats.empty() ? 0.0 : a / stats.size();
}

struct BenchRig::Engine {
  cuda::AttentionEngine engine;
  cuda::DeviceBuffer workspace, states_storage;
  std::vector<cuda::LayerState> states;
  Engine(const BlockShape& shape, const PagedKVConfig& kv, const ModeConfig& mode, const cuda::EngineOptions& options)
      : engine(shape, kv, mode, options) {}
};

BenchRig::BenchRig(const RigConfig& config, cudaStream_t stream) : config_(config), stream_(stream) {
  const int S = num_seqs(), B = config.block_size;
  shape_ = BlockShape{B, kQHeads, kKvHeads, kHeadDim};
  int64_t pages = 0;
  for (int L : config.prefix_lens) {
    pages += (L + kPageSize - 1) / kPageSize;
    max_pages_ = std::max(max_pages_, (L + kPageSize - 1) / kPageSize);
  }
  kv_config_.num_kv_heads = kKvHeads;
  kv_config_.head_dim = kHeadDim;
  kv_config_.page_size = kPageSize;
  kv_config_.max_pages = static_cast<int>(pages);
  kv_config_.dtype = DType::bf16;
  kv_config_.keep_bounds8 = config.keep_bounds8;
  cache_ = std::make_unique<cuda::DeviceKVCache>(kv_config_, config.num_layers);
  std::vector<int64_t> capacity(config.prefix_lens.begin(), config.prefix_lens.end());
  cache_->set_batch(capacity, stream_);
  step_q_.resize(config.max_steps);
  step_k_.resize(config.max_steps);
  step_v_.resize(config.max_steps);
  for (int s = 0; s < S; ++s) {
    SyntheticConfig wc;
    wc.shape = shape_;
    wc.prefix_len = config.prefix_lens[s];
    wc.page_size = kPageSize;
    wc.dtype = DType::bf16;
    wc.changing_tokens = std::max(1, B / 8);
    wc.seed = config.seed + 7919 * s;
    SyntheticWorkload w(wc);
    // Each layer appends the same prefix (its own copy): the device computes the bounds.
    const auto k = token_major(w.cache(), false), v = token_major(w.cache(), true);
    cuda::DeviceBuffer dk(k.size() * 2), dv(v.size() * 2);
    dk.upload(k.data(), dk.bytes());
    dv.upload(v.data(), dv.bytes());
    for (int l = 0; l < config.num_layers; ++l)
      cache_->append(l, s, 1, cuda::TokenTensor{dk.data(), 0}, cuda::TokenTensor{dv.data(), 0}, config.prefix_lens[s], stream_);
    cache_->advance(s, 1, config.prefix_lens[s], stream_);
    cuda::synchronize(stream_);
    for (int t = 0; t < config.max_steps; ++t) {
      w.next_step();
      step_q_[t].push_back(cuda::upload_as(DType::bf16, w.q()));
      step_k_[t].push_back(cuda::upload_as(DType::bf16, w.k_block()));
      step_v_[t].push_back(cuda::upload_as(DType::bf16, w.v_block()));
    }
  }
  q_ = cuda::DeviceBuffer(step_q_[0][0].bytes() * S);
  k_ = cuda::DeviceBuffer(step_k_[0][0].bytes() * S);
  v_ = cuda::DeviceBuffer(step_v_[0][0].bytes() * S);
  o_ = cuda::DeviceBuffer(q_.bytes());
}

BenchRig::~BenchRig() = default;

int64_t BenchRig::layer_kv_bytes() const {
  int64_t tokens = 0;
  for (int L : config_.prefix_lens) tokens += L;
  return tokens * 2 * kKvHeads * kHeadDim * 2;
}

void BenchRig::load_step(int step) const {
  for (int s = 0; s < num_seqs(); ++s) {
    const size_t qb = step_q_[step][s].bytes(), kb = step_k_[step][s].bytes();
    LOSA_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(q_.data()) + s * qb, step_q_[step][s].data(), qb,
                                    cudaMemcpyDeviceToDevice, stream_));
    LOSA_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(k_.data()) + s * kb, step_k_[step][s].data(), kb,
                                    cudaMemcpyDeviceToDevice, stream_));
    LOSA_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(v_.data()) + s * kb, step_v_[step][s].data(), kb,
                                    cudaMemcpyDeviceToDevice, stream_));
  }
}

cuda::StepIO BenchRig::io() const {
  cuda::StepIO io;
  io.q = cuda::TokenTensor{q_.data(), 0};
  io.k = cuda::TokenTensor{k_.data(), 0};
  io.v = cuda::TokenTensor{v_.data(), 0};
  io.o = o_.data();
  return io;
}

std::unique_ptr<BenchRig::Engine> BenchRig::make_engine(const ModeConfig& mode, int layers) const {
  auto e = std::make_unique<Engine>(shape_, kv_config_, mode, config_.engine);
  e->engine.plan(num_seqs(), max_pages_);
  e->workspace = cuda::allocate_for_engine(e->engine.workspace_bytes());
  e->engine.bind_workspace(e->workspace.data(), e->workspace.bytes(), stream_);
  const size_t per_layer = (e->engine.layer_state_bytes() + 255) / 256 * 256;
  e->states_storage = cuda::DeviceBuffer(std::max<size_t>(per_layer * layers, 1));
  for (int l = 0; l < layers; ++l)
    e->states.push_back(
        e->engine.make_layer_state(static_cast<char*>(e->states_storage.data()) + per_layer * l, per_layer, stream_));
  return e;
}

namespace {
struct Graph {
  cudaGraphExec_t exec = nullptr;
  ~Graph() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};
// Names a measurement's replays, warm-up and timed, for a profiler (ncu --nvtx --nvtx-include
// "batch losa b=256 k=4/" picks its kernels); without a profiler attached the calls do nothing.
class NvtxRange {
 public:
  explicit NvtxRange(const std::string& name) { nvtxRangePushA(name.c_str()); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

// Steps run directly before the repeating kind: LoSA's step 0, SparseD's full steps and switch.
int warm_steps(const ModeConfig& mode) {
  if (mode.mode == Mode::sparsed) return sparsed_full_steps(mode);
  return mode.mode == Mode::losa ? 1 : 0;
}
}  // namespace

Measurement BenchRig::time_steady_step(const std::string& label, const ModeConfig& mode, int reps, int warmup,
                                       int layers, bool with_stages, size_t l2_bytes) {
  Measurement m;
  m.label = label;
  m.mode = mode;
  m.num_seqs = num_seqs();
  const int R_max = config_.num_layers, warm = warm_steps(mode);
  auto e = make_engine(mode, R_max);
  for (int l = 0; l < R_max; ++l)
    for (int t = 0; t < warm; ++t) {
      load_step(t);
      e->engine.run(cache_->view(l), io(), e->states[l], t, stream_);
    }
  // One untimed step of the repeating kind at layer 0: its statistics, and the bytes that size
  // the rotation (at least 4x the L2 read per graph replay).
  load_step(warm);
  e->engine.run(cache_->view(0), io(), e->states[0], warm, stream_);
  for (int s = 0; s < num_seqs(); ++s) m.stats.push_back(e->engine.last_stats(s, stream_));
  const int64_t bytes = std::max<int64_t>(m.bytes(), 1);
  m.layers = layers > 0 ? std::min(layers, R_max)
                        : std::clamp<int>(static_cast<int>((4 * static_cast<int64_t>(l2_bytes) + bytes - 1) / bytes), 2, R_max);
  m.workspace_bytes = e->engine.workspace_bytes();
  m.layer_state_bytes = e->engine.layer_state_bytes();
  Graph g;
  {
    cudaGraph_t graph;
    LOSA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    for (int l = 0; l < m.layers; ++l) e->engine.run(cache_->view(l), io(), e->states[l], warm, stream_);
    LOSA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    LOSA_CUDA_CHECK(cudaGraphInstantiate(&g.exec, graph, 0));
    LOSA_CUDA_CHECK(cudaGraphDestroy(graph));
  }
  EventPair ev;
  std::vector<double> times;
  {
    const NvtxRange range((num_seqs() > 1 ? "batch " : "single ") + label);
    for (int it = 0; it < warmup + reps; ++it) {
      load_step(warm + 1 + it % 2);  // changed queries at every replay
      ev.start(stream_);
      LOSA_CUDA_CHECK(cudaGraphLaunch(g.exec, stream_));
      ev.stop(stream_);
      LOSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (it >= warmup) times.push_back(ev.micros() / m.layers);
    }
  }
  m.time_us = median(times);
  std::sort(times.begin(), times.end());
  m.p10_us = times[times.size() / 10];
  m.p90_us = times[times.size() * 9 / 10];

  if (with_stages) {
    // One layer-step captured with an event between stages (event-record nodes in the graph):
    // where the time goes, launch gaps included in the stage that follows them.
    std::vector<cudaEvent_t> marks(16);
    for (auto& ev_mark : marks) LOSA_CUDA_CHECK(cudaEventCreate(&ev_mark));
    std::vector<std::string> names;
    e->engine.set_stage_hook([&](const char* stage) {
      LOSA_CUDA_CHECK(cudaEventRecordWithFlags(marks.at(names.size()), stream_, cudaEventRecordExternal));
      names.emplace_back(stage);
    });
    Graph staged;
    cudaGraph_t graph;
    LOSA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    e->engine.run(cache_->view(0), io(), e->states[0], warm, stream_);
    LOSA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    LOSA_CUDA_CHECK(cudaGraphInstantiate(&staged.exec, graph, 0));
    LOSA_CUDA_CHECK(cudaGraphDestroy(graph));
    e->engine.set_stage_hook({});
    std::map<std::string, std::vector<double>> per_stage;
    for (int it = 0; it < warmup + reps; ++it) {
      load_step(warm + 1 + it % 2);
      LOSA_CUDA_CHECK(cudaGraphLaunch(staged.exec, stream_));
      LOSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (it < warmup) continue;
      for (size_t i = 0; i + 1 < names.size(); ++i) {
        float ms = 0.0f;
        LOSA_CUDA_CHECK(cudaEventElapsedTime(&ms, marks[i], marks[i + 1]));
        per_stage[names[i]].push_back(1000.0 * ms);
      }
    }
    for (auto& ev_mark : marks) cudaEventDestroy(ev_mark);
    for (auto& [name, t] : per_stage) m.stages[name] = median(t);
  }
  return m;
}

std::vector<StepStats> BenchRig::stats_of(const ModeConfig& mode) {
  auto e = make_engine(mode, 1);
  for (int t = 0; t < 2; ++t) {
    load_step(t);
    e->engine.run(cache_->view(0), io(), e->states[0], t, stream_);
  }
  std::vector<StepStats> stats;
  for (int s = 0; s < num_seqs(); ++s) stats.push_back(e->engine.last_stats(s, stream_));
  return stats;
}

StepDecisions BenchRig::decisions_of(const ModeConfig& mode) {
  auto e = make_engine(mode, 1);
  for (int t = 0; t < 2; ++t) {
    load_step(t);
    e->engine.run(cache_->view(0), io(), e->states[0], t, stream_);
  }
  return e->engine.last_decisions(0, e->states[0], stream_);
}

double BenchRig::time_block(const ModeConfig& mode, int T, int reps, int warmup) {
  auto e = make_engine(mode, 1);
  Graph first, later;
  for (int kind = 0; kind < 2; ++kind) {
    cudaGraph_t graph;
    LOSA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    e->engine.run(cache_->view(0), io(), e->states[0], kind, stream_);
    LOSA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    LOSA_CUDA_CHECK(cudaGraphInstantiate(&(kind ? later : first).exec, graph, 0));
    LOSA_CUDA_CHECK(cudaGraphDestroy(graph));
  }
  EventPair ev;
  std::vector<double> totals;
  for (int it = 0; it < warmup + reps; ++it) {
    double total = 0.0;
    for (int t = 0; t < T; ++t) {
      load_step(std::min(t, config_.max_steps - 1));
      ev.start(stream_);
      LOSA_CUDA_CHECK(cudaGraphLaunch((t == 0 ? first : later).exec, stream_));
      ev.stop(stream_);
      LOSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
      total += ev.micros();
    }
    if (it >= warmup) totals.push_back(total);
  }
  return median(totals);
}

}  // namespace losa::tools
