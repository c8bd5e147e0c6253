#include "losa/eval/evaluate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

#include "losa/errors.hpp"

namespace losa::eval {
namespace {

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

}  // namespace

std::vector<ModeVariant> make_variants(const VariantGrid& grid, int64_t context_len) {
  LOSA_CHECK_ARG(context_len > 0, "context_len", "must be > 0, got ", context_len);
  std::vector<ModeVariant> out;
  for (Mode mode : grid.modes) {
    ModeVariant v;
    v.mode = mode_name(mode);
    v.config.mode = mode;
    if (mode == Mode::dense) {
      out.push_back(v);
      continue;
    }
    for (int budget : grid.budgets) {
      LOSA_CHECK_ARG(budget > 0, "budgets", "must be > 0, got ", budget);
      ModeVariant b = v;
      b.budget_tokens = budget;
      b.config.budget_tokens = budget;
      if (mode == Mode::quest) {
        out.push_back(b);
      } else if (mode == Mode::losa) {
        const size_t first = out.size();
        for (int k : grid.k_actives) {
          ModeVariant l = b;
          l.config.active_rule = ActiveRule::top_k;
          l.config.k_active = k;
          l.options = "k_active=" + std::to_string(k);
          out.push_back(l);
        }
        for (double tau : grid.taus) {
          ModeVariant l = b;
          l.config.active_rule = ActiveRule::tau;
          l.config.tau = tau;
          l.options = "tau=" + format_number(tau);
          out.push_back(l);
        }
        for (double theta : grid.delta_mins) {
          LOSA_CHECK_ARG(std::isfinite(theta) && theta > 0.0, "delta_mins", "must be finite and > 0, got ", theta);
          ModeVariant l = b;
          l.config.active_rule = ActiveRule::delta_min;
          l.config.delta_min = theta;
          l.options = "delta_min=" + format_number(theta);
          out.push_back(l);
        }
        if (grid.with_complement) {
          const size_t plain_end = out.size();
          for (size_t i = first; i < plain_end; ++i) {
            ModeVariant c = out[i];
            c.config.losa_complement = true;
            c.options += ",complement";
            out.push_back(c);
          }
        }
      } else {  // sparsed: the same share of the prefix as the token budget
        ModeVariant s = b;
        s.config.sparsed_select = std::min(1.0, static_cast<double>(budget) / static_cast<double>(context_len));
        s.config.sparsed_skip = grid.sparsed_skip;
        s.options = "select=" + format_number(s.config.sparsed_select) + ",skip=" + format_number(grid.sparsed_skip);
        out.push_back(s);
      }
    }
  }
  return out;
}

uint64_t eval_seed(uint64_t seed, int64_t sample) {
  // `losa tasks` uses (shard seed << 32) + i with shard seeds below 2^31: the top bit is free.
  return (uint64_t{1} << 63) | ((seed & 0xffffffffull) << 24) | static_cast<uint64_t>(sample & 0xffffff);
}

std::vector<EvalRecord> evaluate(runtime::ModelBackend& backend, const EvalOptions& options,
                                 const std::function<std::vector<ModeVariant>(int64_t)>& variants_at,
                                 const std::function<void(const EvalProgress&)>& progress) {
  LOSA_CHECK_ARG(!options.tasks.empty(), "tasks", "names no task");
  LOSA_CHECK_ARG(!options.lengths.empty(), "lengths", "names no context length");
  LOSA_CHECK_ARG(options.samples >= 1, "samples", "must be >= 1, got ", options.samples);
  LOSA_CHECK_ARG(options.batch >= 1 && options.batch <= 64, "batch", "must be in 1..64, got ", options.batch);
  for (int64_t len : options.lengths)
    for (Task t : options.tasks)
      LOSA_CHECK_ARG(len >= min_context_len(t), "lengths", "has ", len, "; the tasks need at least ",
                     min_context_len(t), " tokens");

  const auto start = std::chrono::steady_clock::now();
  EvalProgress state;
  std::vector<std::vector<ModeVariant>> variants;
  for (int64_t len : options.lengths) {
    variants.push_back(variants_at(len));
    state.total += static_cast<int64_t>(variants.back().size()) * static_cast<int64_t>(options.tasks.size()) *
                   options.samples;
  }

  std::vector<EvalRecord> records;
  for (size_t li = 0; li < options.lengths.size(); ++li) {
    const int64_t len = options.lengths[li];
    // Every variant decodes the same examples.
    std::vector<TaskExample> examples;
    for (Task task : options.tasks)
      for (int i = 0; i < options.samples; ++i) examples.push_back(make_example(task, len, eval_seed(options.seed, i)));
    size_t longest_answer = 0;
    for (const TaskExample& ex : examples) longest_answer = std::max(longest_answer, ex.answer.size());

    for (const ModeVariant& variant : variants[li]) {
      runtime::DecodeOptions decode = options.decode;
      decode.forward.mode = variant.config;
      decode.max_new_tokens = static_cast<int64_t>(longest_answer) + 64;
      decode.stop_ids.clear();
      decode.use_model_eos = false;
      decode.stop_ids.push_back(TaskVocab::eos);
      decode.mask_token_id = TaskVocab::mask;
      state.current = std::to_string(len) + " tokens, " + variant.mode +
                      (variant.options.empty() ? "" : " " + variant.options) +
                      (variant.budget_tokens ? " budget " + std::to_string(variant.budget_tokens) : "");

      struct Sums {
        int samples = 0, correct = 0, blocks = 0;
        double density = 0.0, active = 0.0, block_us = 0.0;
        std::vector<double> layer_density, layer_active;
        int block_size = 0, steps = 0;
        std::vector<std::vector<int32_t>> generated;
      };
      std::map<Task, Sums> by_task;
      for (size_t first = 0; first < examples.size(); first += static_cast<size_t>(options.batch)) {
        const size_t last = std::min(examples.size(), first + static_cast<size_t>(options.batch));
        std::vector<std::vector<int32_t>> prompts;
        for (size_t i = first; i < last; ++i) prompts.push_back(examples[i].prompt);
        const runtime::DecodeResult result = runtime::decode(backend, prompts, decode);
        const double batch_size = static_cast<double>(last - first);
        for (size_t i = first; i < last; ++i) {
          const runtime::SequenceResult& seq = result.sequences[i - first];
          Sums& s = by_task[examples[i].task];
          s.samples += 1;
          s.correct += is_correct(examples[i], seq.generated) ? 1 : 0;
          s.generated.push_back(seq.generated);
          s.block_size = result.block_size;
          s.steps = result.steps;
          for (const runtime::BlockRecord& b : seq.blocks) {
            s.blocks += 1;
            s.density += b.density;
            s.active += b.active_tokens;
            s.block_us += b.seconds * 1e6 / batch_size;
            s.layer_density.resize(b.layer_density.size(), 0.0);
            s.layer_active.resize(b.layer_active_tokens.size(), 0.0);
            for (size_t l = 0; l < b.layer_density.size(); ++l) s.layer_density[l] += b.layer_density[l];
            for (size_t l = 0; l < b.layer_active_tokens.size(); ++l) s.layer_active[l] += b.layer_active_tokens[l];
          }
        }
        state.done += static_cast<int64_t>(last - first);
        state.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (progress) progress(state);
      }
      for (Task task : options.tasks) {
        const Sums& s = by_task[task];
        EvalRecord r;
        r.task = task_name(task);
        r.mode = variant.mode;
        r.options = variant.options;
        r.budget_tokens = variant.budget_tokens;
        r.context_len = len;
        r.samples = s.samples;
        r.accuracy = s.samples ? static_cast<double>(s.correct) / s.samples : 0.0;
        r.density = s.blocks ? s.density / s.blocks : 0.0;
        r.active_tokens = s.blocks ? s.active / s.blocks : 0.0;
        r.time_per_block_us = s.blocks ? s.block_us / s.blocks : 0.0;
        for (double d : s.layer_density) r.layer_density.push_back(d / s.blocks);
        for (double a : s.layer_active) r.layer_active_tokens.push_back(a / s.blocks);
        r.block_size = s.block_size;
        r.steps = s.steps;
        r.generated = s.generated;
        records.push_back(r);
      }
    }
  }
  return records;
}

}  // namespace losa::eval
