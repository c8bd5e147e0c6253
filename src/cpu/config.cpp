// Validation of shapes and mode configurations, and mode names.
#include <cmath>

#include "losa/errors.hpp"
#include "losa/modes.hpp"
#include "losa/paged_kv.hpp"
#include "losa/shapes.hpp"

namespace losa {

void validate(const BlockShape& s) {
  LOSA_CHECK_ARG(s.block_size > 0, "block_size", "must be > 0, got ", s.block_size);
  LOSA_CHECK_ARG(s.num_kv_heads > 0, "num_kv_heads", "must be > 0, got ", s.num_kv_heads);
  LOSA_CHECK_ARG(s.num_q_heads > 0 && s.num_q_heads % s.num_kv_heads == 0, "num_q_heads",
                 "must be a positive multiple of num_kv_heads=", s.num_kv_heads, ", got ",
                 s.num_q_heads);
  LOSA_CHECK_ARG(is_supported_head_dim(s.head_dim), "head_dim", "must be 64 or 128, got ",
                 s.head_dim);
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::dense: return "dense";
    case Mode::quest: return "quest";
    case Mode::losa: return "losa";
    case Mode::sparsed: return "sparsed";
  }
  return "?";
}

const char* active_rule_name(ActiveRule r) {
  switch (r) {
    case ActiveRule::top_k: return "top_k";
    case ActiveRule::tau: return "tau";
    case ActiveRule::delta_min: return "delta_min";
  }
  return "?";
}

Mode parse_mode(const std::string& name) {
  if (name == "dense") return Mode::dense;
  if (name == "quest") return Mode::quest;
  if (name == "losa") return Mode::losa;
  if (name == "sparsed") return Mode::sparsed;
  throw ArgumentError("parse_mode", "mode",
                      "must be one of dense, quest, losa, sparsed, got '" + name + "'");
}

void validate(const ModeConfig& c, int block_size, int page_size) {
  LOSA_CHECK_ARG(std::isfinite(c.softmax_scale) && c.softmax_scale >= 0.0f, "softmax_scale",
                 "must be finite and >= 0 (0 selects 1/sqrt(head_dim)), got ", c.softmax_scale);
  if (c.mode == Mode::quest || c.mode == Mode::losa) {
    LOSA_CHECK_ARG(c.budget_tokens > 0, "budget_tokens", "must be > 0, got ", c.budget_tokens);
    LOSA_CHECK_ARG(c.budget_tokens >= page_size, "budget_tokens",
                   "must be at least one page (page_size=", page_size, "), got ",
                   c.budget_tokens);
  }
  LOSA_CHECK_ARG(!c.bounds8 || c.mode == Mode::quest || c.mode == Mode::losa, "bounds8",
                 "applies to the QUEST scoring of quest and losa, not to ", mode_name(c.mode));
  if (c.mode == Mode::losa) {
    if (c.active_rule == ActiveRule::top_k)
      LOSA_CHECK_ARG(c.k_active >= 0 && c.k_active <= block_size, "k_active",
                     "must be in [0, block_size=", block_size, "], got ", c.k_active);
    else if (c.active_rule == ActiveRule::tau)
      LOSA_CHECK_ARG(c.tau > 0.0 && c.tau <= 1.0, "tau", "must be in (0, 1], got ", c.tau);
    else
      LOSA_CHECK_ARG(std::isfinite(c.delta_min) && c.delta_min > 0.0, "delta_min",
                     "must be finite and > 0 (a token with no change is never active), got ", c.delta_min);
    LOSA_CHECK_ARG(!(c.losa_complement && c.losa_step0_quest), "losa_complement",
                   "needs a dense step 0 (the complement is taken out of it); losa_step0_quest is set");
  }
  LOSA_CHECK_ARG(!c.losa_complement || c.mode == Mode::losa, "losa_complement", "applies to losa, not to ",
                 mode_name(c.mode));
  if (c.mode == Mode::sparsed) {
    LOSA_CHECK_ARG(c.steps_per_block > 0, "steps_per_block", "must be > 0, got ",
                   c.steps_per_block);
    LOSA_CHECK_ARG(c.sparsed_skip >= 0.0 && c.sparsed_skip <= 1.0, "sparsed_skip",
                   "must be in [0, 1], got ", c.sparsed_skip);
    LOSA_CHECK_ARG(c.sparsed_select > 0.0 && c.sparsed_select <= 1.0, "sparsed_select",
                   "must be in (0, 1], got ", c.sparsed_select);
  }
}

int kv_reads_per_loaded_page(const ModeConfig& c, int step) {
  return c.mode == Mode::losa && c.losa_complement && step > 0 ? 2 : 1;
}

int sparsed_full_steps(const ModeConfig& c) {
  const int full = static_cast<int>(std::ceil(c.sparsed_skip * c.steps_per_block - 1e-9));
  return full < 1 ? 1 : full;
}

}  // namespace losa
