// The CUDA model backend: the Qwen3 stack on the GPU over one batch of sequences, attention
// through the AttentionEngine so that every mode applies to every layer (DESIGN.md section 6).
//
// One forward of the batch's blocks (a denoising step or the commit) is a fixed sequence of
// launches that reads everything data-dependent from device memory (tokens, the sitting-out
// mask, lengths): it is captured once per step kind into a CUDA graph and replayed.
#include <algorithm>
#include <map>
#include <cstring>
#include <numeric>
#include <string>

#include "../../cuda/check.hpp"
#include "../batch_layout.hpp"
#include "../forward_report.hpp"
#include "device_weights.hpp"
#include "gemm.hpp"
#include "losa/cuda/device.hpp"
#include "losa/cuda/engine.hpp"
#include "losa/cuda/kv_cache.hpp"
#include "losa/cuda/prefill.hpp"
#include "losa/errors.hpp"
#include "losa/runtime/cuda_backend.hpp"
#include "losa/runtime/rope.hpp"
#include "model_kernels.hpp"

namespace losa::runtime {
namespace {

using losa::cuda::DeviceBuffer;
namespace lc = losa::cuda;

/// Page-locked host memory, for copies that graphs and streams can overlap.
template <typename T>
class PinnedArray {
 public:
  PinnedArray() = default;
  explicit PinnedArray(size_t count) : count_(count) {
    if (count) LOSA_CUDA_CHECK(cudaMallocHost(&data_, count * sizeof(T)));
  }
  ~PinnedArray() {
    if (data_) cudaFreeHost(data_);
  }
  PinnedArray(PinnedArray&& o) noexcept : data_(std::exchange(o.data_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  PinnedArray& operator=(PinnedArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(count_, o.count_);
    return *this;
  }
  T* data() const { return data_; }
  T& operator[](size_t i) const { return data_[i]; }
  size_t size() const { return count_; }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

class CudaBackend final : public ModelBackend {
 public:
  CudaBackend(const Weights& weights, const CudaBackendOptions& options);
  ~CudaBackend() override;

  const ModelConfig& config() const override { return cfg_; }
  int num_sequences() const override { return num_seqs_; }
  int64_t kv_length(int seq) const override {
    check_started("kv_length");
    return cache_->kv_len(seq);
  }
  void start(const std::vector<std::vector<int32_t>>& prefill_tokens, const std::vector<int64_t>& capacity_tokens,
             const ForwardOptions& options) override;
  void begin_block() override;
  void set_attention_mode(const ModeConfig& mode) override;
  ForwardReport denoise(const int32_t* block_tokens, const uint8_t* take_part, const Sampler& sampler,
                        const SampleKey* keys, TokenProposal* proposals) override;
  ForwardReport commit(const int32_t* block_tokens, const uint8_t* take_part) override;
  const float* last_logits() const override;
  const ForwardDecisions& last_decisions() const override { return decisions_; }
  void replay_next(ForwardDecisions) override {
    throw ArgumentError("replay_next", "backend",
                        "the CUDA backend does not replay decisions; the CPU reference replays this backend's "
                        "(ForwardOptions::record_decisions)");
  }

 private:
  void check_started(const char* function) const {
    if (!cache_) throw ArgumentError(function, "backend", "has no batch: call start() first");
  }
  int64_t rows() const { return static_cast<int64_t>(num_seqs_) * opt_.block_size; }
  /// candidates: ids the device greedy pick considers (the sampler's vocab limit, or all).
  ForwardReport run_block(const int32_t* block_tokens, const uint8_t* take_part, bool commit, bool want_logits,
                          int64_t candidates = 0);
  /// Enqueues one forward of every sequence's block (the masked ones sit out) at step `step`.
  void enqueue_block(int step, bool commit, bool want_logits);
  /// One layer's attention input: norm, fused QKV GEMM, q/k-norm + RoPE at positions from kv_len.
  void enqueue_qkv(int layer, int64_t rows, const int32_t* kv_len, int rows_per_seq);
  /// One layer's attention-free half: o projection onto x, norm, SwiGLU MLP onto x.
  void enqueue_mlp(int layer, int64_t rows);
  void prefill(int seq, const std::vector<int32_t>& tokens);
  void install_engine(std::unique_ptr<lc::AttentionEngine> engine);
  void record_layer_decisions(int layer);
  void mark(const char* stage) const {
    if (backend_options_.stage_hook) backend_options_.stage_hook(stage, stream_);
  }
  void sample_on_host(const std::vector<int>& seqs, const Sampler& sampler, const SampleKey* keys,
                      TokenProposal* proposals);

  ModelConfig cfg_;
  CudaBackendOptions backend_options_;
  RopeTable rope_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Gemm> gemm_;
  cuda::DeviceWeights weights_;
  DeviceBuffer inv_freq_;

  ForwardOptions opt_;
  int num_seqs_ = 0;
  std::unique_ptr<lc::DeviceKVCache> cache_;
  std::unique_ptr<lc::AttentionEngine> engine_;
  std::unique_ptr<lc::PrefillAttention> prefill_attention_;
  DeviceBuffer workspace_, states_storage_;
  std::vector<lc::LayerState> states_;
  // Activations, sized for max(S * B, prefill chunk) rows; logits for S * B rows.
  DeviceBuffer x_, h_, qkv_, o_, gate_up_, act_, logits_, tokens_, mask_, stats_, picked_, confidence_, candidates_;
  PinnedArray<int32_t> host_tokens_, host_picked_, host_stats_;
  PinnedArray<float> host_confidence_;
  PinnedArray<uint8_t> host_mask_;
  PinnedArray<int64_t> host_candidates_;
  std::vector<int> seq_step_;  // forwards each sequence took in the current block
  std::map<std::pair<int, bool>, cudaGraphExec_t> graphs_;
  mutable std::vector<float> logits_host_;
  mutable bool logits_stale_ = true;
  ForwardDecisions decisions_;
};

CudaBackend::CudaBackend(const Weights& weights, const CudaBackendOptions& options)
    : cfg_(weights.config), backend_options_(options), rope_(make_rope_table(weights.config)) {
  LOSA_CHECK_ARG(lc::device_count() > 0, "device", "no CUDA device is present");
  LOSA_CHECK_ARG(static_cast<int>(weights.layers.size()) == cfg_.num_hidden_layers, "weights", "has ",
                 weights.layers.size(), " layers but its config says ", cfg_.num_hidden_layers);
  LOSA_CHECK_ARG(cfg_.head_dim == 64 || cfg_.head_dim == 128, "config.head_dim",
                 "must be 64 or 128 on the GPU, got ", cfg_.head_dim);
  size_t free_bytes = 0, total_bytes = 0;
  LOSA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const int64_t need = cuda::device_weight_bytes(weights);
  LOSA_CHECK_ARG(need < static_cast<int64_t>(free_bytes), "weights", "need ", format_bytes(static_cast<double>(need)),
                 " of GPU memory but only ", format_bytes(static_cast<double>(free_bytes)), " are free");
  LOSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  gemm_ = std::make_unique<cuda::Gemm>(stream_);
  weights_ = cuda::upload_weights(weights);
  inv_freq_ = DeviceBuffer(rope_.inv_freq.size() * sizeof(double));
  inv_freq_.upload(rope_.inv_freq.data(), inv_freq_.bytes());
}

CudaBackend::~CudaBackend() {
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::start(const std::vector<std::vector<int32_t>>& prefill_tokens,
                        const std::vector<int64_t>& capacity_tokens, const ForwardOptions& options) {
  validate(options, cfg_);
  LOSA_CHECK_ARG(options.block_size <= 64, "block_size", "must be <= 64 on the GPU, got ", options.block_size);
  LOSA_CHECK_ARG(options.kv_dtype == DType::bf16, "kv_dtype", "must be bf16 on the GPU (the weights and GEMMs are bf16)");
  const detail::BatchLayout batch = detail::plan_batch(cfg_, options, prefill_tokens, capacity_tokens);
  const int S = batch.num_seqs, B = options.block_size, L = cfg_.num_hidden_layers;
  const int64_t pages = batch.pages, max_pages = batch.max_pages_per_seq;
  const PagedKVConfig& kv = batch.kv;
  // Everything this batch needs, in 64 bits, against the free GPU memory, before allocating.
  const BlockShape shape{B, cfg_.num_attention_heads, cfg_.num_key_value_heads, cfg_.head_dim};
  auto engine = std::make_unique<lc::AttentionEngine>(shape, kv, options.mode);
  engine->plan(S, static_cast<int>(max_pages));
  const int64_t max_rows = std::max<int64_t>(int64_t{S} * B, options.prefill_chunk);
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int64_t qkv_dim = cfg_.q_dim() + 2 * cfg_.kv_dim();
  const int64_t activations = max_rows * (H * 4 + H * 2 + qkv_dim * 2 + cfg_.q_dim() * 2 + 2 * I * 2 + I * 2) +
                              int64_t{S} * B * V * 4;
  const int64_t kv_bytes = lc::DeviceKVCache::bytes_needed(kv, L);
  const int64_t engine_bytes = static_cast<int64_t>(engine->workspace_bytes() + L * engine->layer_state_bytes());
  size_t free_bytes = 0, total_bytes = 0;
  cache_.reset();  // a previous batch's memory counts as free
  states_storage_ = DeviceBuffer();
  workspace_ = DeviceBuffer();
  LOSA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const int64_t need = kv_bytes + engine_bytes + activations + (64 << 20);
  LOSA_CHECK_ARG(need <= static_cast<int64_t>(free_bytes), "capacity_tokens", "the batch needs ",
                 format_bytes(static_cast<double>(need)), " of GPU memory (KV cache of ", pages, " pages per layer: ",
                 format_bytes(static_cast<double>(kv_bytes)), "; activations ",
                 format_bytes(static_cast<double>(activations)), ") but only ",
                 format_bytes(static_cast<double>(free_bytes)), " are free after the weights");

  opt_ = options;
  num_seqs_ = S;
  cache_ = std::make_unique<lc::DeviceKVCache>(kv, L);
  cache_->set_batch(capacity_tokens, stream_);
  install_engine(std::move(engine));
  prefill_attention_ = std::make_unique<lc::PrefillAttention>(kv, cfg_.num_attention_heads, options.prefill_chunk,
                                                              static_cast<int>(max_pages),
                                                              options.mode.softmax_scale);
  x_ = DeviceBuffer(max_rows * H * 4);
  h_ = DeviceBuffer(max_rows * H * 2);
  qkv_ = DeviceBuffer(max_rows * qkv_dim * 2);
  o_ = DeviceBuffer(max_rows * cfg_.q_dim() * 2);
  gate_up_ = DeviceBuffer(max_rows * 2 * I * 2);
  act_ = DeviceBuffer(max_rows * I * 2);
  logits_ = DeviceBuffer(static_cast<size_t>(S) * B * V * 4);
  tokens_ = DeviceBuffer(max_rows * 4);
  mask_ = DeviceBuffer(S);
  const int64_t stats_per_layer = int64_t{S} * (1 + cfg_.num_key_value_heads);
  stats_ = DeviceBuffer(L * stats_per_layer * 4);
  picked_ = DeviceBuffer(int64_t{S} * B * 4);
  confidence_ = DeviceBuffer(int64_t{S} * B * 4);
  candidates_ = DeviceBuffer(8);
  host_candidates_ = PinnedArray<int64_t>(1);
  host_tokens_ = PinnedArray<int32_t>(max_rows);
  host_picked_ = PinnedArray<int32_t>(int64_t{S} * B);
  host_confidence_ = PinnedArray<float>(int64_t{S} * B);
  host_stats_ = PinnedArray<int32_t>(L * stats_per_layer);
  host_mask_ = PinnedArray<uint8_t>(S);
  seq_step_.assign(S, 0);
  decisions_.assign(L, std::vector<StepDecisions>(S));
  logits_stale_ = true;
  for (int s = 0; s < S; ++s) prefill(s, prefill_tokens[s]);
  LOSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::install_engine(std::unique_ptr<lc::AttentionEngine> engine) {
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();  // the graphs point at the old engine's buffers
  const int L = cfg_.num_hidden_layers;
  states_.clear();
  states_storage_ = DeviceBuffer();
  workspace_ = DeviceBuffer();
  engine_ = std::move(engine);
  if (backend_options_.stage_hook)
    engine_->set_stage_hook([this](const char* stage) {
      if (std::strcmp(stage, "done") != 0) mark(("attention." + std::string(stage)).c_str());
    });
  workspace_ = lc::allocate_for_engine(engine_->workspace_bytes());
  engine_->bind_workspace(workspace_.data(), workspace_.bytes(), stream_);
  const size_t state_bytes = (engine_->layer_state_bytes() + 255) / 256 * 256;
  states_storage_ = DeviceBuffer(std::max<size_t>(state_bytes * L, 1));
  for (int l = 0; l < L; ++l)
    states_.push_back(engine_->make_layer_state(static_cast<char*>(states_storage_.data()) + state_bytes * l,
                                                state_bytes, stream_));
}

void CudaBackend::set_attention_mode(const ModeConfig& mode) {
  check_started("set_attention_mode");
  ForwardOptions next = opt_;
  next.mode = mode;
  validate(next, cfg_);
  LOSA_CHECK_ARG(!mode.bounds8 || cache_->config().keep_bounds8, "mode.bounds8",
                 "needs a batch started with 8-bit bounds (ForwardOptions::keep_bounds8)");
  const BlockShape shape{opt_.block_size, cfg_.num_attention_heads, cfg_.num_key_value_heads, cfg_.head_dim};
  auto engine = std::make_unique<lc::AttentionEngine>(shape, cache_->config(), mode);
  int max_pages = 1;
  for (int s = 0; s < num_seqs_; ++s) max_pages = std::max(max_pages, cache_->reserved_pages(s));
  engine->plan(num_seqs_, max_pages);
  install_engine(std::move(engine));
  opt_ = next;
  LOSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::enqueue_qkv(int layer, int64_t rows, const int32_t* kv_len, int rows_per_seq) {
  const cuda::DeviceLayerWeights& w = weights_.layers[layer];
  const int64_t H = cfg_.hidden_size, qkv_dim = cfg_.q_dim() + 2 * cfg_.kv_dim();
  mark("input_norm");
  cuda::launch_rms_norm(x_.as<float>(), w.input_norm.as<cuda::bf16>(), rows, static_cast<int>(H),
                        static_cast<float>(cfg_.rms_norm_eps), h_.as<cuda::bf16>(), stream_);
  mark("qkv");
  gemm_->to_bf16(h_.as<cuda::bf16>(), w.qkv.as<cuda::bf16>(), rows, qkv_dim, H, qkv_.as<cuda::bf16>());
  cuda::QkNormRope r;
  r.qkv = qkv_.as<cuda::bf16>();
  r.q_norm = w.q_norm.as<cuda::bf16>();
  r.k_norm = w.k_norm.as<cuda::bf16>();
  r.inv_freq = inv_freq_.as<double>();
  r.kv_len = kv_len;
  r.rows_per_seq = rows_per_seq;
  r.num_q_heads = cfg_.num_attention_heads;
  r.num_kv_heads = cfg_.num_key_value_heads;
  r.head_dim = cfg_.head_dim;
  r.eps = static_cast<float>(cfg_.rms_norm_eps);
  r.attention_factor = rope_.attention_factor;
  mark("qk_norm_rope");
  cuda::launch_qk_norm_rope(r, rows, stream_);
}

void CudaBackend::enqueue_mlp(int layer, int64_t rows) {
  const cuda::DeviceLayerWeights& w = weights_.layers[layer];
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size;
  mark("o");
  gemm_->to_f32(o_.as<cuda::bf16>(), w.o.as<cuda::bf16>(), rows, H, cfg_.q_dim(), x_.as<float>(), true);
  mark("post_norm");
  cuda::launch_rms_norm(x_.as<float>(), w.post_norm.as<cuda::bf16>(), rows, static_cast<int>(H),
                        static_cast<float>(cfg_.rms_norm_eps), h_.as<cuda::bf16>(), stream_);
  mark("gate_up");
  gemm_->to_bf16(h_.as<cuda::bf16>(), w.gate_up.as<cuda::bf16>(), rows, 2 * I, H, gate_up_.as<cuda::bf16>());
  mark("silu_mul");
  cuda::launch_silu_mul(gate_up_.as<cuda::bf16>(), rows, static_cast<int>(I), act_.as<cuda::bf16>(), stream_);
  mark("down");
  gemm_->to_f32(act_.as<cuda::bf16>(), w.down.as<cuda::bf16>(), rows, H, I, x_.as<float>(), true);
}

// Prefill of one sequence, chunk by chunk: each layer appends the chunk's K/V at the sequence's
// length, then the chunk attends block-causally over the cache (PrefillAttention); the length
// advances once every layer has appended.
void CudaBackend::prefill(int seq, const std::vector<int32_t>& tokens) {
  const int64_t total = static_cast<int64_t>(tokens.size()), C = opt_.prefill_chunk;
  const int64_t qkv_dim = cfg_.q_dim() + 2 * cfg_.kv_dim(), qd = cfg_.q_dim(), kd = cfg_.kv_dim();
  for (int64_t c0 = 0; c0 < total; c0 += C) {
    const int rows = static_cast<int>(std::min<int64_t>(C, total - c0));
    for (int i = 0; i < rows; ++i) {
      LOSA_CHECK_ARG(tokens[c0 + i] >= 0 && tokens[c0 + i] < cfg_.vocab_size, "prefill_tokens", "sequence ", seq,
                     " token ", c0 + i, " = ", tokens[c0 + i], " is outside the vocabulary");
      host_tokens_[i] = tokens[c0 + i];
    }
    LOSA_CUDA_CHECK(cudaMemcpyAsync(tokens_.data(), host_tokens_.data(), rows * 4, cudaMemcpyHostToDevice, stream_));
    cuda::launch_embed(weights_.embed.as<cuda::bf16>(), tokens_.as<int32_t>(), rows, cfg_.hidden_size, x_.as<float>(),
                       stream_);
    for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
      const lc::KVBatchView view = cache_->view(l, seq, 1);
      enqueue_qkv(l, rows, view.kv_len, rows);
      const auto* base = qkv_.as<cuda::bf16>();
      cache_->append(l, seq, 1, lc::TokenTensor{base + qd, qkv_dim}, lc::TokenTensor{base + qd + kd, qkv_dim}, rows,
                     stream_);
      prefill_attention_->run(view, rows, opt_.block_size, lc::TokenTensor{base, qkv_dim}, o_.data(), qd, stream_);
      enqueue_mlp(l, rows);
    }
    cache_->advance(seq, 1, rows, stream_);
    // The pinned token buffer is rewritten by the next chunk.
    LOSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
}

void CudaBackend::begin_block() {
  check_started("begin_block");
  std::fill(seq_step_.begin(), seq_step_.end(), 0);
  // A replayed step 0 runs no host code: the block's guard starts here for every layer.
  for (int l = 0; l < cfg_.num_hidden_layers; ++l) states_[l].block_version = cache_->view(l).version;
}

void CudaBackend::enqueue_block(int step, bool commit, bool want_logits) {
  const int B = opt_.block_size, S = num_seqs_, L = cfg_.num_hidden_layers;
  const int64_t R = rows(), H = cfg_.hidden_size;
  const int64_t qkv_dim = cfg_.q_dim() + 2 * cfg_.kv_dim(), qd = cfg_.q_dim(), kd = cfg_.kv_dim();
  const int64_t stats_per_layer = int64_t{S} * (1 + cfg_.num_key_value_heads);
  const auto* mask = mask_.as<uint8_t>();
  mark("embed");
  cuda::launch_embed(weights_.embed.as<cuda::bf16>(), tokens_.as<int32_t>(), R, static_cast<int>(H), x_.as<float>(),
                     stream_);
  for (int l = 0; l < L; ++l) {
    const lc::KVBatchView view = cache_->view(l);
    enqueue_qkv(l, R, view.kv_len, B);
    const auto* base = qkv_.as<cuda::bf16>();
    lc::StepIO io;
    io.q = lc::TokenTensor{base, qkv_dim};
    io.k = lc::TokenTensor{base + qd, qkv_dim};
    io.v = lc::TokenTensor{base + qd + kd, qkv_dim};
    io.o = o_.data();
    io.o_stride = qd;
    io.stats = stats_.as<int32_t>() + l * stats_per_layer;
    io.seq_mask = mask;
    mark("attention");
    if (backend_options_.attention) engine_->run(view, io, states_[l], step, stream_);
    if (opt_.record_decisions) record_layer_decisions(l);
    if (commit) mark("append");
    if (commit) cache_->append(l, 0, S, io.k, io.v, B, stream_, mask);
    enqueue_mlp(l, R);
  }
  if (commit) {
    std::vector<uint8_t> host(host_mask_.data(), host_mask_.data() + S);
    cache_->advance(0, S, B, stream_, mask, &host);
  } else if (want_logits) {
    mark("final_norm");
    cuda::launch_rms_norm(x_.as<float>(), weights_.norm.as<cuda::bf16>(), R, static_cast<int>(H),
                          static_cast<float>(cfg_.rms_norm_eps), h_.as<cuda::bf16>(), stream_);
    mark("lm_head");
    gemm_->to_f32(h_.as<cuda::bf16>(), static_cast<const cuda::bf16*>(weights_.lm_head()), R, cfg_.vocab_size, H,
                  logits_.as<float>(), false);
    mark("greedy");
    cuda::launch_greedy(logits_.as<float>(), R, cfg_.vocab_size, candidates_.as<int64_t>(), mask, B,
                        picked_.as<int32_t>(), confidence_.as<float>(), stream_);
  }
  mark("done");
}

void CudaBackend::record_layer_decisions(int layer) {
  // Only outside graphs (a test option): the workspace holds the choices until the next layer.
  for (int s = 0; s < num_seqs_; ++s)
    decisions_[layer][s] = host_mask_[s] ? engine_->last_decisions(s, states_[layer], stream_) : StepDecisions{};
}

ForwardReport CudaBackend::run_block(const int32_t* block_tokens, const uint8_t* take_part, bool commit,
                                     bool want_logits, int64_t candidates) {
  LOSA_CHECK_ARG(block_tokens != nullptr, "block_tokens", "must not be null");
  const int B = opt_.block_size, S = num_seqs_, L = cfg_.num_hidden_layers, Hk = cfg_.num_key_value_heads;
  std::vector<int> seqs;
  for (int s = 0; s < S; ++s)
    if (!take_part || take_part[s]) seqs.push_back(s);
  ForwardReport report = detail::start_report(L, S, seqs);
  if (seqs.empty()) return report;
  for (int64_t r = 0; r < rows(); ++r) {
    LOSA_CHECK_ARG(block_tokens[r] >= 0 && block_tokens[r] < cfg_.vocab_size, "block_tokens", "entry ", r, " = ",
                   block_tokens[r], " is outside the vocabulary");
    host_tokens_[r] = block_tokens[r];
  }
  // Sequences whose step kinds differ (a commit after blocks of different lengths, under
  // SparseD) run in groups, one forward per kind; the rest sit out of each.
  std::map<int, std::vector<int>> by_kind;
  for (int s : seqs) by_kind[engine_->step_kind(seq_step_[s])].push_back(s);
  const int64_t stats_per_layer = int64_t{S} * (1 + Hk);
  std::vector<std::vector<StepStats>> layer_stats(L, std::vector<StepStats>(seqs.size()));
  LOSA_CUDA_CHECK(cudaMemcpyAsync(tokens_.data(), host_tokens_.data(), rows() * 4, cudaMemcpyHostToDevice, stream_));
  host_candidates_[0] = candidates > 0 ? candidates : cfg_.vocab_size;
  LOSA_CUDA_CHECK(cudaMemcpyAsync(candidates_.data(), host_candidates_.data(), 8, cudaMemcpyHostToDevice, stream_));
  std::vector<int64_t> prefix_len(S);
  for (int s = 0; s < S; ++s) prefix_len[s] = cache_->kv_len(s);
  for (const auto& [kind, group] : by_kind) {
    for (int s = 0; s < S; ++s) host_mask_[s] = 0;
    for (int s : group) host_mask_[s] = 1;
    LOSA_CUDA_CHECK(cudaMemcpyAsync(mask_.data(), host_mask_.data(), S, cudaMemcpyHostToDevice, stream_));
    const int step = seq_step_[group.front()];
    const bool graphs = backend_options_.use_graphs && !opt_.record_decisions;
    if (graphs) {
      const auto key = std::make_pair(kind * 2 + (want_logits ? 1 : 0), commit);
      auto it = graphs_.find(key);
      if (it == graphs_.end()) {
        cudaGraph_t graph;
        LOSA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
        try {
          enqueue_block(step, commit, want_logits);
        } catch (...) {
          cudaStreamEndCapture(stream_, &graph);
          throw;
        }
        LOSA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
        cudaGraphExec_t exec;
        LOSA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
        cudaGraphDestroy(graph);
        it = graphs_.emplace(key, exec).first;
      }
      LOSA_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
      if (commit) {
        std::vector<uint8_t> host(host_mask_.data(), host_mask_.data() + S);
        cache_->mirror_advance(0, S, B, &host);
      }
    } else {
      enqueue_block(step, commit, want_logits);
    }
    LOSA_CUDA_CHECK(cudaMemcpyAsync(host_stats_.data(), stats_.data(), stats_.bytes(), cudaMemcpyDeviceToHost, stream_));
    if (want_logits && !commit) {
      LOSA_CUDA_CHECK(cudaMemcpyAsync(host_picked_.data(), picked_.data(), picked_.bytes(), cudaMemcpyDeviceToHost, stream_));
      LOSA_CUDA_CHECK(cudaMemcpyAsync(host_confidence_.data(), confidence_.data(), confidence_.bytes(),
                                      cudaMemcpyDeviceToHost, stream_));
    }
    LOSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    // Statistics of the group's sequences, as the CPU reference's StepStats would say them.
    const int64_t page_kv_bytes = 2LL * opt_.page_size * cfg_.head_dim * dtype_bytes(opt_.kv_dtype);
    const int64_t bound_bytes = opt_.mode.bounds8 ? 2LL * cfg_.head_dim + 4 : 2LL * cfg_.head_dim * dtype_bytes(opt_.kv_dtype);
    const bool scored = opt_.mode.mode == Mode::quest ||
                        (opt_.mode.mode == Mode::losa && (step > 0 || opt_.mode.losa_step0_quest));
    for (int l = 0; l < L; ++l)
      for (size_t j = 0; j < seqs.size(); ++j) {
        const int s = seqs[j];
        if (!host_mask_[s]) continue;
        const int32_t* st = host_stats_.data() + l * stats_per_layer + s * (1 + Hk);
        StepStats& out = layer_stats[l][j];
        out.mode = opt_.mode.mode;
        out.step = step;
        out.num_pages = static_cast<int>((prefix_len[s] + opt_.page_size - 1) / opt_.page_size);
        out.active_tokens = st[0];
        out.full_step = st[0] == B;
        out.pages_loaded.assign(st + 1, st + 1 + Hk);
        out.kv_bytes = std::accumulate(out.pages_loaded.begin(), out.pages_loaded.end(), int64_t{0}) * page_kv_bytes *
                       kv_reads_per_loaded_page(opt_.mode, step);
        out.bounds_bytes = scored && st[0] > 0 ? bound_bytes * Hk * out.num_pages : 0;
      }
  }
  for (int l = 0; l < L; ++l) detail::add_layer_stats(report, l, seqs, layer_stats[l]);
  for (int s : seqs) ++seq_step_[s];
  logits_stale_ = true;
  return report;
}

void CudaBackend::sample_on_host(const std::vector<int>& seqs, const Sampler& sampler, const SampleKey* keys,
                                 TokenProposal* proposals) {
  const int B = opt_.block_size;
  const int64_t V = cfg_.vocab_size;
  std::vector<float> row(static_cast<size_t>(V));
  for (int s : seqs)
    for (int i = 0; i < B; ++i) {
      const int64_t r = int64_t{s} * B + i;
      LOSA_CUDA_CHECK(cudaMemcpy(row.data(), logits_.as<float>() + r * V, V * 4, cudaMemcpyDeviceToHost));
      SampleKey key = keys[s];
      key.position = i;
      proposals[r] = sampler.sample(row.data(), V, key);
    }
}

ForwardReport CudaBackend::denoise(const int32_t* block_tokens, const uint8_t* take_part, const Sampler& sampler,
                                   const SampleKey* keys, TokenProposal* proposals) {
  check_started("denoise");
  LOSA_CHECK_ARG(keys != nullptr && proposals != nullptr, "keys/proposals", "must not be null");
  const SamplerParams& sp = sampler.params();
  ForwardReport report = run_block(block_tokens, take_part, false, true, sp.vocab_limit);
  const bool device_greedy = sampler.greedy() && sp.top_k == 0 && sp.top_p >= 1.0;
  std::vector<int> seqs;
  for (int s = 0; s < num_seqs_; ++s)
    if (report.took_part[s]) seqs.push_back(s);
  if (device_greedy) {
    for (int s : seqs)
      for (int i = 0; i < opt_.block_size; ++i) {
        const int64_t r = int64_t{s} * opt_.block_size + i;
        proposals[r] = TokenProposal{host_picked_[r], host_confidence_[r]};
      }
  } else {
    sample_on_host(seqs, sampler, keys, proposals);
  }
  return report;
}

ForwardReport CudaBackend::commit(const int32_t* block_tokens, const uint8_t* take_part) {
  check_started("commit");
  return run_block(block_tokens, take_part, true, false);
}

const float* CudaBackend::last_logits() const {
  check_started("last_logits");
  if (logits_stale_) {
    logits_host_.resize(logits_.bytes() / 4);
    LOSA_CUDA_CHECK(cudaMemcpy(logits_host_.data(), logits_.data(), logits_.bytes(), cudaMemcpyDeviceToHost));
    logits_stale_ = false;
  }
  return logits_host_.data();
}

}  // namespace

bool cuda_backend_available() { return lc::device_count() > 0; }

std::unique_ptr<ModelBackend> make_cuda_backend(const Weights& weights, const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(weights, options);
}

}  // namespace losa::runtime
