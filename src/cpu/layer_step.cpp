// The layer-step of every mode on the CPU reference backend.
#include "losa/layer_step.hpp"

#include <algorithm>
#include <numeric>

#include "losa/attention_state.hpp"
#include "losa/errors.hpp"

namespace losa {

double StepStats::density() const {
  if (num_pages == 0 || pages_loaded.empty()) return 0.0;
  const int64_t loaded = std::accumulate(pages_loaded.begin(), pages_loaded.end(), int64_t{0});
  return static_cast<double>(loaded) / (static_cast<double>(num_pages) * pages_loaded.size());
}

namespace {

std::vector<int> all_tokens(int block_size) {
  std::vector<int> t(block_size);
  std::iota(t.begin(), t.end(), 0);
  return t;
}

void copy_token_rows(const float* src, const std::vector<int>& tokens, int row_elems,
                     std::vector<float>& dst) {
  for (int t : tokens)
    std::copy(src + static_cast<size_t>(t) * row_elems,
              src + static_cast<size_t>(t + 1) * row_elems,
              dst.begin() + static_cast<size_t>(t) * row_elems);
}

// The mode's own choices for this step (DESIGN.md section 2).
StepDecisions decide_step(const PagedKVCache& cache, int seq, const BlockShape& shape,
                          const ModeConfig& config, const float* q, const float* k_blk,
                          const float* v_blk, const LayerBlockState& state) {
  const int B = shape.block_size, Hk = shape.num_kv_heads, n = cache.num_pages(seq);
  const bool first = state.step() == 0;
  StepDecisions d;
  switch (config.mode) {
    case Mode::dense:
      d.tokens = all_tokens(B);
      d.selection = select_all_pages(n, Hk);
      break;
    case Mode::quest:
      d.tokens = all_tokens(B);
      d.selection =
          quest_select(cache, seq, shape, q, d.tokens, config.budget_tokens, config.attend, config.bounds8);
      break;
    case Mode::losa:
      if (first) {
        d.tokens = all_tokens(B);
        d.selection = config.losa_step0_quest ? quest_select(cache, seq, shape, q, d.tokens, config.budget_tokens,
                                                             config.attend, config.bounds8)
                                              : select_all_pages(n, Hk);
      } else {
        const std::vector<double> delta =
            config.change_includes_kv
                ? change_scores(shape, q, state.q_ref().data(), k_blk, state.k_ref().data(), v_blk,
                                state.v_ref().data())
                : change_scores(shape, q, state.q_ref().data());
        d.tokens = select_active_tokens(delta, config.active_rule, config.k_active, config.tau, config.delta_min);
        if (!d.tokens.empty()) {
          d.selection =
              quest_select(cache, seq, shape, q, d.tokens, config.budget_tokens, config.attend, config.bounds8);
        } else {
          d.selection.num_pages = n;
          d.selection.kv_head_pages.assign(Hk, {});
        }
      }
      break;
    case Mode::sparsed:
      d.tokens = all_tokens(B);
      d.selection = state.step() < sparsed_full_steps(config) ? select_all_pages(n, Hk)
                                                              : state.sparsed_selection();
      break;
  }
  return d;
}

}  // namespace

StepStats layer_step(const PagedKVCache& cache, int seq, const BlockShape& shape,
                     const ModeConfig& config, const float* q, const float* k_blk,
                     const float* v_blk, LayerBlockState& state, float* o,
                     const StepDecisions* replay, StepDecisions* decided) {
  validate(shape);
  const PagedKVConfig& kv = cache.config();
  validate(config, shape.block_size, kv.page_size);
  LOSA_CHECK_ARG(shape.num_kv_heads == kv.num_kv_heads, "shape.num_kv_heads", "is ",
                 shape.num_kv_heads, " but the cache has ", kv.num_kv_heads);
  LOSA_CHECK_ARG(shape.head_dim == kv.head_dim, "shape.head_dim", "is ", shape.head_dim,
                 " but the cache has ", kv.head_dim);
  LOSA_CHECK_ARG(q && k_blk && v_blk && o, "q/k_blk/v_blk/o", "must not be null");
  const int n = cache.num_pages(seq);  // validates seq
  const int B = shape.block_size, Hq = shape.num_q_heads, Hk = shape.num_kv_heads;
  const int D = shape.head_dim;
  const float scale = config.softmax_scale > 0.0f ? config.softmax_scale : shape.default_scale();
  const size_t q_elems = static_cast<size_t>(shape.num_rows()) * D;
  const size_t kv_elems = static_cast<size_t>(B) * Hk * D;

  const int kv_len = cache.kv_len(seq);
  if (state.step_ == 0) {
    state.kv_len_ = kv_len;
    state.prefix_o_.assign(q_elems, 0.0f);
    state.prefix_lse_.assign(shape.num_rows(), 0.0f);
    state.q_ref_.assign(q_elems, 0.0f);
    state.k_ref_.assign(kv_elems, 0.0f);
    state.v_ref_.assign(kv_elems, 0.0f);
    state.sparsed_selection_ = PageSelection{};
  } else {
    LOSA_CHECK_ARG(state.kv_len_ == kv_len, "seq", "prefix changed within a block (", state.kv_len_, " -> ",
                   kv_len, " tokens); call state.begin_block() after appending");
    LOSA_CHECK_ARG(state.prefix_o_.size() == q_elems && state.k_ref_.size() == kv_elems, "shape",
                   "changed within a block; call state.begin_block()");
  }

  StepStats stats;
  stats.mode = config.mode;
  stats.step = state.step_;
  stats.num_pages = n;
  stats.pages_loaded.assign(Hk, 0);

  // Which tokens get a fresh prefix part this step, and over which pages: made here, or
  // replayed from another backend (then nothing is decided twice).
  const bool first = state.step_ == 0;
  const bool quest_step = config.mode == Mode::quest ||
                          (config.mode == Mode::losa && (!first || config.losa_step0_quest));
  if (replay)
    for (int t : replay->tokens)
      LOSA_CHECK_ARG(t >= 0 && t < B, "replay", "token ", t, " out of range");
  const StepDecisions chosen =
      replay ? *replay : decide_step(cache, seq, shape, config, q, k_blk, v_blk, state);
  const std::vector<int>& tokens = chosen.tokens;
  const PageSelection& selection = chosen.selection;
  const bool scored = quest_step && !tokens.empty();  // QUEST bounds were read
  if (config.mode == Mode::losa) {  // fresh tokens get new references; stable ones keep theirs
    copy_token_rows(q, tokens, Hq * D, state.q_ref_);
    copy_token_rows(k_blk, tokens, Hk * D, state.k_ref_);
    copy_token_rows(v_blk, tokens, Hk * D, state.v_ref_);
  }
  if (decided) *decided = chosen;
  prefix_attention(cache, seq, shape, q, tokens, selection, scale, state.prefix_o_.data(),
                   state.prefix_lse_.data());
  if (config.losa_complement && first) {
    state.anchor_o_ = state.prefix_o_;
    state.anchor_lse_ = state.prefix_lse_;
    state.anchor_q_.assign(q, q + q_elems);
  } else if (config.losa_complement && !tokens.empty()) {
    LOSA_CHECK_ARG(state.anchor_o_.size() == q_elems, "config.losa_complement",
                   "was set after this block's step 0, which kept no step-0 state to subtract from");
    // What the pages left out held at step 0: the step-0 query's part over the loaded pages,
    // taken out of its dense state, then merged with the fresh part over those pages.
    std::vector<float> anchor_part_o(q_elems, 0.0f), anchor_part_lse(shape.num_rows(), 0.0f), rest_o(D);
    prefix_attention(cache, seq, shape, state.anchor_q_.data(), tokens, selection, scale, anchor_part_o.data(),
                     anchor_part_lse.data());
    for (int t : tokens)
      for (int h = 0; h < Hq; ++h) {
        const size_t r = static_cast<size_t>(t) * Hq + h;
        float rest_lse = 0.0f;
        subtract_state(&state.anchor_o_[r * D], state.anchor_lse_[r], &anchor_part_o[r * D], anchor_part_lse[r], D,
                       rest_o.data(), &rest_lse);
        merge_state(&state.prefix_o_[r * D], state.prefix_lse_[r], rest_o.data(), rest_lse, D,
                    &state.prefix_o_[r * D], &state.prefix_lse_[r]);
      }
  }
  for (int h = 0; h < Hk; ++h)
    stats.pages_loaded[h] = static_cast<int64_t>(selection.kv_head_pages[h].size());
  stats.active_tokens = static_cast<int>(tokens.size());
  stats.full_step = stats.active_tokens == B;
  stats.kv_bytes = selection.pages_loaded() * static_cast<int64_t>(cache.page_kv_bytes()) *
                   kv_reads_per_loaded_page(config, state.step_);
  stats.bounds_bytes =
      scored ? static_cast<int64_t>(n) * Hk * static_cast<int64_t>(cache.page_bounds_bytes(config.bounds8)) : 0;

  // Block part, then the merge. The merge reads the cached prefix state, so a step that reuses
  // it gives exactly what the step that computed it gave.
  std::vector<float> block_o(q_elems), block_lse(shape.num_rows()), lse(shape.num_rows());
  block_attention(shape, q, k_blk, v_blk, scale, block_o.data(), block_lse.data());
  for (int r = 0; r < shape.num_rows(); ++r)
    merge_state(&state.prefix_o_[static_cast<size_t>(r) * D], state.prefix_lse_[r],
                &block_o[static_cast<size_t>(r) * D], block_lse[r], D,
                o + static_cast<size_t>(r) * D, &lse[r]);

  if (config.mode == Mode::sparsed && state.step_ == sparsed_full_steps(config) - 1) {
    const std::vector<double> mass = sparsed_page_mass(cache, seq, shape, q, lse.data(), scale);
    state.sparsed_selection_ = sparsed_select(mass, shape, n, config.sparsed_select, config.attend);
  }
  ++state.step_;
  return stats;
}

}  // namespace losa
