// The CPU reference backend: a Qwen3 decoder stack over a batch of sequences, attention through
// losa::layer_step so that every mode applies to every layer (DESIGN.md section 6).
#include <algorithm>
#include <numeric>

#include "batch_layout.hpp"
#include "cpu_ops.hpp"
#include "forward_report.hpp"
#include "losa/errors.hpp"
#include "losa/paged_kv.hpp"
#include "losa/runtime/backend.hpp"
#include "losa/runtime/rope.hpp"
#include "parallel.hpp"

namespace losa::runtime {
namespace {

using detail::add_in_place;
using detail::BatchLayout;
using detail::linear;
using detail::rms_norm;

class CpuBackend final : public ModelBackend {
 public:
  CpuBackend(const Weights& weights, int num_threads)
      : w_(weights), cfg_(weights.config), threads_(detail::resolve_threads(num_threads)),
        rope_(make_rope_table(weights.config)) {
    LOSA_CHECK_ARG(static_cast<int>(w_.layers.size()) == cfg_.num_hidden_layers, "weights",
                   "has ", w_.layers.size(), " layers but its config says ", cfg_.num_hidden_layers);
    LOSA_CHECK_ARG(num_threads >= 0, "num_threads", "must be >= 0 (0 = all cores), got ",
                   num_threads);
  }

  const ModelConfig& config() const override { return cfg_; }
  int num_sequences() const override { return num_seqs_; }
  int64_t kv_length(int seq) const override {
    check_started("kv_length");
    return caches_.front()->kv_len(seq);
  }

  void start(const std::vector<std::vector<int32_t>>& prefill_tokens,
             const std::vector<int64_t>& capacity_tokens, const ForwardOptions& options) override;
  void begin_block() override {
    check_started("begin_block");
    for (auto& layer : states_)
      for (auto& s : layer) s.begin_block();
  }
  void set_attention_mode(const ModeConfig& mode) override {
    check_started("set_attention_mode");
    ForwardOptions next = opt_;
    next.mode = mode;
    validate(next, cfg_);
    LOSA_CHECK_ARG(!mode.bounds8 || caches_.front()->config().keep_bounds8, "mode.bounds8",
                   "needs a batch started with 8-bit bounds (ForwardOptions::keep_bounds8)");
    opt_ = next;
    for (auto& layer : states_)
      for (auto& s : layer) s.begin_block();
  }
  ForwardReport denoise(const int32_t* block_tokens, const uint8_t* take_part,
                        const Sampler& sampler, const SampleKey* keys,
                        TokenProposal* proposals) override;
  ForwardReport commit(const int32_t* block_tokens, const uint8_t* take_part) override;
  const float* last_logits() const override { return logits_.data(); }
  const ForwardDecisions& last_decisions() const override { return decisions_; }
  void replay_next(ForwardDecisions decisions) override {
    check_started("replay_next");
    LOSA_CHECK_ARG(static_cast<int>(decisions.size()) == cfg_.num_hidden_layers, "decisions",
                   "has ", decisions.size(), " layers, want ", cfg_.num_hidden_layers);
    for (const auto& layer : decisions)
      LOSA_CHECK_ARG(static_cast<int>(layer.size()) == num_seqs_, "decisions",
                     "has a layer with ", layer.size(), " sequences, want ", num_seqs_);
    replay_ = std::move(decisions);
  }

 private:
  void check_started(const char* function) const {
    if (caches_.empty())
      throw ArgumentError(function, "backend", "has no batch: call start() first");
  }
  BlockShape block_shape(int tokens) const {
    return BlockShape{tokens, cfg_.num_attention_heads, cfg_.num_key_value_heads, cfg_.head_dim};
  }
  struct AttentionInputs {
    std::vector<float> q, k, v;  // [rows, Hq*D], [rows, Hk*D], [rows, Hk*D]
  };
  // The first half of a layer: input norm, q/k/v projections, per-head q/k RMSNorm, then RoPE
  // at positions[r]. x: [rows, hidden], rows = positions.size().
  AttentionInputs attention_inputs(const LayerWeights& lw, const std::vector<float>& x,
                                   const std::vector<int64_t>& positions) const;
  // The attention-free half of a layer: from the attention output o [rows, Hq*D] to x.
  void finish_layer(const LayerWeights& lw, const std::vector<float>& o, int64_t rows,
                    std::vector<float>& x) const;
  ForwardReport run_block(const int32_t* block_tokens, const uint8_t* take_part, bool commit);
  void prefill(const std::vector<std::vector<int32_t>>& tokens);
  // Sequences prefilled together: their GEMMs share rows and their attention runs in parallel.
  int prefill_group(int num_seqs) const { return std::max(1, std::min(num_seqs, threads_)); }

  const Weights& w_;
  const ModelConfig& cfg_;
  int threads_;
  RopeTable rope_;
  ForwardOptions opt_;
  int num_seqs_ = 0;
  std::vector<std::unique_ptr<PagedKVCache>> caches_;  // [layer]
  std::vector<std::vector<LayerBlockState>> states_;   // [layer][seq]
  std::vector<float> logits_;                          // [S, B, V]
  ForwardDecisions decisions_, replay_;
};

void CpuBackend::start(const std::vector<std::vector<int32_t>>& prefill_tokens,
                       const std::vector<int64_t>& capacity_tokens, const ForwardOptions& options) {
  validate(options, cfg_);
  const BatchLayout batch = detail::plan_batch(cfg_, options, prefill_tokens, capacity_tokens);
  const int S = batch.num_seqs, B = options.block_size, P = options.page_size;
  const int64_t pages = batch.pages;  // 64 bits, checked before anything is allocated
  const int64_t elem = dtype_bytes(options.kv_dtype);
  const int64_t page_bytes = 2 * cfg_.kv_dim() * (P + 1) * elem;  // K, V and the key bounds
  const int64_t prefill_rows = int64_t{options.prefill_chunk} * prefill_group(S);
  const int64_t activations =
      int64_t{S} * B * cfg_.vocab_size * 4 +
      prefill_rows * (2 * cfg_.hidden_size + 2 * cfg_.intermediate_size + cfg_.q_dim() * 2 + cfg_.kv_dim() * 2) * 4;
  check_host_memory(pages * page_bytes * cfg_.num_hidden_layers + activations, "capacity_tokens",
                    "the KV cache (" + std::to_string(pages) + " pages per layer) and activations");

  opt_ = options;
  num_seqs_ = S;
  caches_.clear();
  states_.assign(cfg_.num_hidden_layers, std::vector<LayerBlockState>(S));
  const PagedKVConfig& kv = batch.kv;
  for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
    caches_.push_back(std::make_unique<PagedKVCache>(kv));
    for (int s = 0; s < S; ++s) caches_.back()->add_sequence();
  }
  logits_.assign(static_cast<size_t>(S) * B * cfg_.vocab_size, 0.0f);
  decisions_.assign(cfg_.num_hidden_layers, std::vector<StepDecisions>(S));
  replay_.clear();
  prefill(prefill_tokens);
}

CpuBackend::AttentionInputs CpuBackend::attention_inputs(const LayerWeights& lw,
                                                         const std::vector<float>& x,
                                                         const std::vector<int64_t>& positions) const {
  const int D = cfg_.head_dim, Hq = cfg_.num_attention_heads, Hk = cfg_.num_key_value_heads;
  const int64_t rows = static_cast<int64_t>(positions.size());
  std::vector<float> h(x.size());
  rms_norm(x.data(), rows, cfg_.hidden_size, lw.input_layernorm, cfg_.rms_norm_eps, h.data());
  AttentionInputs in{std::vector<float>(static_cast<size_t>(rows * cfg_.q_dim())),
                     std::vector<float>(static_cast<size_t>(rows * cfg_.kv_dim())),
                     std::vector<float>(static_cast<size_t>(rows * cfg_.kv_dim()))};
  linear(h.data(), rows, lw.q_proj, in.q.data(), threads_);
  linear(h.data(), rows, lw.k_proj, in.k.data(), threads_);
  linear(h.data(), rows, lw.v_proj, in.v.data(), threads_);
  rms_norm(in.q.data(), rows * Hq, D, lw.q_norm, cfg_.rms_norm_eps, in.q.data());
  rms_norm(in.k.data(), rows * Hk, D, lw.k_norm, cfg_.rms_norm_eps, in.k.data());
  for (int64_t r = 0; r < rows; ++r) {
    apply_rope(rope_, positions[r], Hq, D, &in.q[r * Hq * D]);
    apply_rope(rope_, positions[r], Hk, D, &in.k[r * Hk * D]);
  }
  return in;
}

void CpuBackend::finish_layer(const LayerWeights& lw, const std::vector<float>& o, int64_t rows,
                              std::vector<float>& x) const {
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size;
  std::vector<float> tmp(static_cast<size_t>(rows * H));
  linear(o.data(), rows, lw.o_proj, tmp.data(), threads_);
  add_in_place(x.data(), tmp.data(), rows * H);
  std::vector<float> h(static_cast<size_t>(rows * H)), gate(static_cast<size_t>(rows * I)),
      up(static_cast<size_t>(rows * I));
  rms_norm(x.data(), rows, H, lw.post_attention_layernorm, cfg_.rms_norm_eps, h.data());
  linear(h.data(), rows, lw.gate_proj, gate.data(), threads_);
  linear(h.data(), rows, lw.up_proj, up.data(), threads_);
  detail::silu_mul(gate.data(), up.data(), rows * I);
  linear(gate.data(), rows, lw.down_proj, tmp.data(), threads_);
  add_in_place(x.data(), tmp.data(), rows * H);
}

// Prefill, chunk by chunk, of up to prefill_group(S) sequences at a time. Within a layer the
// chunk's blocks go through a dense layer_step one after the other, each appending its K/V before
// the next block attends: the same prefix-part + block-part merge as decoding, so block-causal
// attention has one implementation. The group's sequences share the layer's GEMMs (rows are
// independent: a row's output is the same alone or batched) and run each block's layer_steps in
// parallel, their appends after them as in run_block (PagedKVCache::append is not thread-safe).
// A group's chunks bound the activations: [group x chunk, hidden] and [group x chunk, intermediate].
void CpuBackend::prefill(const std::vector<std::vector<int32_t>>& tokens) {
  const int B = opt_.block_size, D = cfg_.head_dim;
  const int Hq = cfg_.num_attention_heads, Hk = cfg_.num_key_value_heads;
  const int64_t H = cfg_.hidden_size, chunk = opt_.prefill_chunk;
  const BlockShape shape = block_shape(B);
  const ModeConfig dense;  // prefill attention is exact
  const int S = static_cast<int>(tokens.size()), group = prefill_group(S);
  struct Part {
    int seq;
    int64_t row0, rows;  // its rows in the chunk's activations
  };
  auto kv_at = [&](const Part& part, int64_t b) { return static_cast<size_t>(part.row0 + b) * Hk * D; };
  for (int g0 = 0; g0 < S; g0 += group) {
    const int g1 = std::min(S, g0 + group);
    int64_t longest = 0;
    for (int s = g0; s < g1; ++s) longest = std::max<int64_t>(longest, static_cast<int64_t>(tokens[s].size()));
    for (int64_t c0 = 0; c0 < longest; c0 += chunk) {
      std::vector<Part> parts;
      int64_t rows = 0, most = 0;
      for (int s = g0; s < g1; ++s) {
        const int64_t n = std::min<int64_t>(chunk, static_cast<int64_t>(tokens[s].size()) - c0);
        if (n <= 0) continue;
        parts.push_back({s, rows, n});
        rows += n;
        most = std::max(most, n);
      }
      std::vector<int64_t> positions(static_cast<size_t>(rows));
      std::vector<float> x(static_cast<size_t>(rows * H));
      for (const Part& part : parts) {
        std::iota(positions.begin() + part.row0, positions.begin() + part.row0 + part.rows, c0);
        detail::embed(w_.embed_tokens, tokens[part.seq].data() + c0, part.rows, &x[part.row0 * H]);
      }
      for (int l = 0; l < cfg_.num_hidden_layers; ++l) {
        const LayerWeights& lw = w_.layers[l];
        AttentionInputs in = attention_inputs(lw, x, positions);
        std::vector<float>&q = in.q, &k = in.k, &v = in.v, o(q.size());
        for (int64_t b = 0; b < most; b += B) {
          detail::parallel_for(static_cast<int64_t>(parts.size()), threads_, [&](int64_t begin, int64_t end) {
            for (int64_t j = begin; j < end; ++j) {
              const Part& part = parts[j];
              if (b >= part.rows) continue;
              LayerBlockState scratch;
              const size_t qo = static_cast<size_t>(part.row0 + b) * Hq * D, ko = kv_at(part, b);
              layer_step(*caches_[l], part.seq, shape, dense, &q[qo], &k[ko], &v[ko], scratch, &o[qo]);
            }
          });
          for (const Part& part : parts)
            if (b < part.rows) caches_[l]->append(part.seq, &k[kv_at(part, b)], &v[kv_at(part, b)], B);
        }
        finish_layer(lw, o, rows, x);
      }
    }
  }
}

ForwardReport CpuBackend::run_block(const int32_t* block_tokens, const uint8_t* take_part,
                                    bool commit) {
  LOSA_CHECK_ARG(block_tokens != nullptr, "block_tokens", "must not be null");
  const int B = opt_.block_size, D = cfg_.head_dim, L = cfg_.num_hidden_layers;
  const int Hq = cfg_.num_attention_heads, Hk = cfg_.num_key_value_heads;
  const int64_t H = cfg_.hidden_size;
  std::vector<int> seqs;
  for (int s = 0; s < num_seqs_; ++s)
    if (!take_part || take_part[s]) seqs.push_back(s);
  const int64_t rows = static_cast<int64_t>(seqs.size()) * B;
  const bool replaying = !replay_.empty();
  ForwardDecisions replay = std::move(replay_);
  replay_.clear();

  ForwardReport report = detail::start_report(L, num_seqs_, seqs);
  if (seqs.empty()) return report;

  std::vector<int32_t> tokens;
  std::vector<int64_t> positions;
  for (int s : seqs)
    for (int i = 0; i < B; ++i) {
      tokens.push_back(block_tokens[static_cast<size_t>(s) * B + i]);
      positions.push_back(caches_.front()->kv_len(s) + i);
    }
  std::vector<float> x(static_cast<size_t>(rows * H)), h(x.size());
  detail::embed(w_.embed_tokens, tokens.data(), rows, x.data());
  const BlockShape shape = block_shape(B);
  const size_t q_block = static_cast<size_t>(B) * Hq * D, kv_block = static_cast<size_t>(B) * Hk * D;
  std::vector<StepStats> stats(seqs.size());
  for (int l = 0; l < L; ++l) {
    const LayerWeights& lw = w_.layers[l];
    AttentionInputs in = attention_inputs(lw, x, positions);
    std::vector<float>&q = in.q, &k = in.k, &v = in.v, o(q.size());
    // Sequences are independent: their layer-steps run in parallel (the cache is only read).
    detail::parallel_for(static_cast<int64_t>(seqs.size()), threads_, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const int s = seqs[j];
        StepDecisions* decided = opt_.record_decisions ? &decisions_[l][s] : nullptr;
        stats[j] = layer_step(*caches_[l], s, shape, opt_.mode, &q[j * q_block], &k[j * kv_block],
                              &v[j * kv_block], states_[l][s], &o[j * q_block],
                              replaying ? &replay[l][s] : nullptr, decided);
      }
    });
    if (commit)  // after every sequence's step of this layer: the block joins the prefix
      for (size_t j = 0; j < seqs.size(); ++j)
        caches_[l]->append(seqs[j], &k[j * kv_block], &v[j * kv_block], B);
    detail::add_layer_stats(report, l, seqs, stats);
    finish_layer(lw, o, rows, x);
  }
  if (!commit) {
    rms_norm(x.data(), rows, H, w_.norm, cfg_.rms_norm_eps, h.data());
    std::vector<float> logits(static_cast<size_t>(rows * cfg_.vocab_size));
    linear(h.data(), rows, w_.lm_head, logits.data(), threads_);
    const size_t row_block = static_cast<size_t>(B) * cfg_.vocab_size;
    for (size_t j = 0; j < seqs.size(); ++j)
      std::copy(logits.begin() + j * row_block, logits.begin() + (j + 1) * row_block,
                logits_.begin() + static_cast<size_t>(seqs[j]) * row_block);
  }
  return report;
}

ForwardReport CpuBackend::denoise(const int32_t* block_tokens, const uint8_t* take_part,
                                  const Sampler& sampler, const SampleKey* keys,
                                  TokenProposal* proposals) {
  check_started("denoise");
  LOSA_CHECK_ARG(keys != nullptr && proposals != nullptr, "keys/proposals", "must not be null");
  ForwardReport report = run_block(block_tokens, take_part, false);
  const int B = opt_.block_size;
  const int64_t V = cfg_.vocab_size;
  for (int s = 0; s < num_seqs_; ++s) {
    if (!report.took_part[s]) continue;
    for (int i = 0; i < B; ++i) {
      SampleKey key = keys[s];
      key.position = i;
      const size_t row = static_cast<size_t>(s) * B + i;
      proposals[row] = sampler.sample(&logits_[row * V], V, key);
    }
  }
  return report;
}

ForwardReport CpuBackend::commit(const int32_t* block_tokens, const uint8_t* take_part) {
  check_started("commit");
  return run_block(block_tokens, take_part, true);
}

}  // namespace

void validate(const ForwardOptions& o, const ModelConfig& config) {
  LOSA_CHECK_ARG(o.block_size >= 1 && o.block_size <= 1024, "block_size",
                 "must be in [1, 1024], got ", o.block_size);
  LOSA_CHECK_ARG(is_supported_page_size(o.page_size), "page_size", "must be 16, 32 or 64, got ",
                 o.page_size);
  LOSA_CHECK_ARG(o.prefill_chunk >= o.block_size && o.prefill_chunk % o.block_size == 0,
                 "prefill_chunk", "must be a positive multiple of block_size=", o.block_size,
                 ", got ", o.prefill_chunk);
  LOSA_CHECK_ARG(is_supported_head_dim(config.head_dim), "config.head_dim",
                 "must be 64 or 128, got ", config.head_dim);
  losa::validate(o.mode, o.block_size, o.page_size);
}

std::unique_ptr<ModelBackend> make_cpu_backend(const Weights& weights, int num_threads) {
  return std::make_unique<CpuBackend>(weights, num_threads);
}

}  // namespace losa::runtime
