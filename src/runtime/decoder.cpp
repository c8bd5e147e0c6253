// The denoising loop: blocks, steps, strategies, commits, stop ids. Backend-agnostic.
#include "losa/runtime/decoder.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "forward_report.hpp"
#include "losa/errors.hpp"

namespace losa::runtime {
namespace {

// One prompt's progress through the generation.
struct SequenceState {
  int64_t prefill = 0;       // floor(P/B)*B tokens prefilled
  int64_t blocks_needed = 0;  // ceil((P + max_new)/B) - prefill/B
  std::vector<int32_t> tail;  // the prompt's last P mod B tokens
  bool stopped = false;
  // The current block.
  std::vector<uint8_t> masked;
  int steps = 0;
  std::vector<double> layer_active_sum, layer_density_sum;  // over the block's forwards
  int forwards = 0;
};

bool contains(const std::vector<int32_t>& ids, int32_t x) {
  return std::find(ids.begin(), ids.end(), x) != ids.end();
}

void add_stats(SequenceState& st, const ForwardReport& r, int s) {
  const size_t L = r.layer_density.size();
  st.layer_active_sum.resize(L, 0.0);
  st.layer_density_sum.resize(L, 0.0);
  for (size_t l = 0; l < L; ++l) {
    st.layer_active_sum[l] += r.sequence_layer_active_tokens[s * L + l];
    st.layer_density_sum[l] += r.sequence_layer_density[s * L + l];
  }
  ++st.forwards;
}

}  // namespace

DecodeOptions resolve_options(const DecodeOptions& options, const ModelConfig& config) {
  DecodeOptions o = options;
  if (o.block_size == 0) o.block_size = config.block_size;
  LOSA_CHECK_ARG(o.block_size != 0, "block_size",
                 "is not set and the model folder's config.json has no block_size");
  LOSA_CHECK_ARG(o.block_size >= 1 && o.block_size <= 64, "block_size", "must be in [1, 64], got ",
                 o.block_size);
  LOSA_CHECK_ARG(o.steps >= 1 && o.steps <= o.block_size, "steps", "must be in [1, block_size=",
                 o.block_size, "], got ", o.steps);
  LOSA_CHECK_ARG(std::isfinite(o.threshold) && o.threshold >= 0.0 && o.threshold <= 1.0,
                 "threshold", "must be in [0, 1], got ", o.threshold);
  LOSA_CHECK_ARG(o.max_new_tokens >= 1 && o.max_new_tokens <= (int64_t{1} << 31), "max_new_tokens",
                 "must be in [1, 2^31], got ", o.max_new_tokens);
  validate(o.sampling);
  LOSA_CHECK_ARG(o.sampling.vocab_limit <= config.vocab_size, "vocab_limit",
                 "must be <= the model's vocab_size=", config.vocab_size, ", got ",
                 o.sampling.vocab_limit);
  if (o.mask_token_id < 0) o.mask_token_id = config.mask_token_id;
  LOSA_CHECK_ARG(o.mask_token_id >= 0, "mask_token_id",
                 "is not set and the model folder's config.json has no mask_token_id");
  LOSA_CHECK_ARG(o.mask_token_id < config.vocab_size, "mask_token_id", "must be < vocab_size=",
                 config.vocab_size, ", got ", o.mask_token_id);
  for (int32_t id : o.stop_ids)
    LOSA_CHECK_ARG(id >= 0 && id < config.vocab_size, "stop_ids", "id ", id,
                   " is outside the vocabulary [0, ", config.vocab_size, ")");
  if (o.use_model_eos)
    for (int32_t id : config.eos_token_ids)
      if (!contains(o.stop_ids, id)) o.stop_ids.push_back(id);
  o.forward.block_size = o.block_size;
  o.forward.mode.steps_per_block = o.steps;
  // A prefill chunk is whole blocks: round the requested size down (at least one block).
  o.forward.prefill_chunk = std::max(o.block_size, o.forward.prefill_chunk / o.block_size * o.block_size);
  validate(o.forward, config);
  return o;
}

DecodeResult decode(ModelBackend& backend, const std::vector<std::vector<int32_t>>& prompts,
                    const DecodeOptions& options,
                    const std::function<void(const DecodeProgress&)>& progress,
                    const BlockObserver& on_block) {
  const ModelConfig& config = backend.config();
  const DecodeOptions o = resolve_options(options, config);
  const int B = o.block_size, S = static_cast<int>(prompts.size());
  LOSA_CHECK_ARG(S >= 1, "prompts", "must hold at least one prompt");
  LOSA_CHECK_ARG(o.sequence_ids.empty() || static_cast<int>(o.sequence_ids.size()) == S,
                 "sequence_ids", "has ", o.sequence_ids.size(), " entries for ", S, " prompts");
  const std::vector<int> schedule = transfer_schedule(B, o.steps);
  const Sampler sampler(o.sampling);

  std::vector<SequenceState> seq(S);
  std::vector<std::vector<int32_t>> prefill(S);
  std::vector<int64_t> capacity(S);
  int64_t rounds = 0;
  for (int s = 0; s < S; ++s) {
    const auto& p = prompts[s];
    for (size_t i = 0; i < p.size(); ++i)
      LOSA_CHECK_ARG(p[i] >= 0 && p[i] < config.vocab_size, "prompts", "prompt ", s, " token ", i,
                     " = ", p[i], " is outside the vocabulary [0, ", config.vocab_size, ")");
    const int64_t P = static_cast<int64_t>(p.size());
    seq[s].prefill = P / B * B;
    seq[s].blocks_needed = (P + o.max_new_tokens + B - 1) / B - seq[s].prefill / B;
    seq[s].tail.assign(p.begin() + seq[s].prefill, p.end());
    prefill[s].assign(p.begin(), p.begin() + seq[s].prefill);
    capacity[s] = seq[s].prefill + seq[s].blocks_needed * B;
    rounds = std::max(rounds, seq[s].blocks_needed);
  }

  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  backend.start(prefill, capacity, o.forward);
  DecodeResult result;
  result.sequences.resize(S);
  result.block_size = B;
  result.steps = o.steps;
  std::vector<int32_t> block(static_cast<size_t>(S) * B, o.mask_token_id);
  std::vector<TokenProposal> proposals(block.size());
  std::vector<SampleKey> keys(S);
  std::vector<uint8_t> take_part(S);
  double density_total = 0.0;
  int64_t density_count = 0, tokens_total = 0;

  for (int64_t r = 0; r < rounds; ++r) {
    const auto round_start = clock::now();
    std::vector<uint8_t> active(S, 0);
    for (int s = 0; s < S; ++s) active[s] = !seq[s].stopped && r < seq[s].blocks_needed;
    if (std::none_of(active.begin(), active.end(), [](uint8_t a) { return a != 0; })) break;
    backend.begin_block();
    for (int s = 0; s < S; ++s) {
      SequenceState& st = seq[s];
      st.masked.assign(B, 1);
      st.steps = 0;
      st.layer_active_sum.clear();
      st.layer_density_sum.clear();
      st.forwards = 0;
      int32_t* row = &block[static_cast<size_t>(s) * B];
      std::fill(row, row + B, o.mask_token_id);
      if (r == 0)  // the prompt's tail sits, fixed, at the start of the first block
        for (size_t i = 0; i < st.tail.size(); ++i) {
          row[i] = st.tail[i];
          st.masked[i] = 0;
        }
    }
    // Denoising steps until no active sequence has a mask left.
    for (;;) {
      bool any = false;
      for (int s = 0; s < S; ++s) {
        const auto& m = seq[s].masked;
        take_part[s] = active[s] && std::find(m.begin(), m.end(), 1) != m.end();
        any = any || take_part[s];
        keys[s] = SampleKey{o.seed, o.sequence_ids.empty() ? s : o.sequence_ids[s], r,
                            seq[s].steps, 0};
      }
      if (!any) break;
      const ForwardReport report =
          backend.denoise(block.data(), take_part.data(), sampler, keys.data(), proposals.data());
      for (int s = 0; s < S; ++s) {
        if (!take_part[s]) continue;
        SequenceState& st = seq[s];
        add_stats(st, report, s);
        const TokenProposal* prop = &proposals[static_cast<size_t>(s) * B];
        for (int i : positions_to_unmask(o.strategy, st.masked, prop, schedule[st.steps], o.threshold)) {
          block[static_cast<size_t>(s) * B + i] = prop[i].token;
          st.masked[i] = 0;
        }
        ++st.steps;
      }
    }
    // The block is final: record it (cut after a stop id and at max_new_tokens), report it,
    // decide who stops, commit the others' K/V.
    std::vector<uint8_t> commit_part(S, 0);
    bool any_commit = false;
    for (int s = 0; s < S; ++s) {
      if (!active[s]) continue;
      SequenceResult& out = result.sequences[s];
      const int first = r == 0 ? static_cast<int>(seq[s].tail.size()) : 0;
      const int64_t room = o.max_new_tokens - static_cast<int64_t>(out.generated.size());
      FinalBlock final_block;
      final_block.sequence = s;
      final_block.block = r;
      for (int i = first; i < B && i - first < room && !final_block.ends_with_stop_id; ++i) {
        const int32_t t = block[static_cast<size_t>(s) * B + i];
        final_block.tokens.push_back(t);
        final_block.ends_with_stop_id = contains(o.stop_ids, t);
      }
      out.generated.insert(out.generated.end(), final_block.tokens.begin(), final_block.tokens.end());
      tokens_total += static_cast<int64_t>(final_block.tokens.size());
      out.stopped = final_block.ends_with_stop_id;
      final_block.last = out.stopped || r + 1 == seq[s].blocks_needed;
      out.halted = on_block && !on_block(final_block);
      seq[s].stopped = out.stopped || out.halted;
      commit_part[s] = !final_block.last && !out.halted;
      any_commit = any_commit || commit_part[s];
    }
    if (any_commit) {
      const ForwardReport report = backend.commit(block.data(), commit_part.data());
      for (int s = 0; s < S; ++s)
        if (commit_part[s]) add_stats(seq[s], report, s);
    }
    const double seconds = std::chrono::duration<double>(clock::now() - round_start).count();
    for (int s = 0; s < S; ++s) {
      if (!active[s]) continue;
      const SequenceState& st = seq[s];
      const double f = std::max(1, st.forwards);
      BlockRecord rec{r, st.steps, commit_part[s] != 0, 0.0, 0.0, seconds, {}, {}};
      for (double a : st.layer_active_sum) rec.layer_active_tokens.push_back(a / f);
      for (double d : st.layer_density_sum) rec.layer_density.push_back(d / f);
      rec.active_tokens = detail::mean(rec.layer_active_tokens);
      rec.density = detail::mean(rec.layer_density);
      density_total += detail::mean(st.layer_density_sum);
      result.sequences[s].blocks.push_back(std::move(rec));
      density_count += st.forwards;
    }
    if (progress)
      progress({r + 1, rounds, tokens_total, std::chrono::duration<double>(clock::now() - t0).count(),
                density_count ? density_total / density_count : 0.0});
  }
  result.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return result;
}

}  // namespace losa::runtime
