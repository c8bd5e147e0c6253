#include "demo_model.hpp"

#include <cstdio>

#include "backend_choice.hpp"
#include "cli_errors.hpp"
#include "losa/eval/evaluate.hpp"
#include "losa/runtime/decoder.hpp"
#include "losa/runtime/weights.hpp"

namespace losa::tools {

int run_model_demo(const ModelDemoOptions& o) {
  const std::string device = o.device.empty() ? default_device() : o.device;
  check_device_flag(device);
  const int64_t len = o.context_len ? o.context_len : (device == "cuda" ? 32768 : 1024);
  if (len < 256 || len > (int64_t{1} << 20)) bad_flag("--context", "must be in 256..1048576, got " + std::to_string(len));
  if (o.budget_tokens < 16) bad_flag("--budget", "must be >= 16, got " + std::to_string(o.budget_tokens));
  const runtime::Weights weights = runtime::load_checkpoint(o.model_dir);
  if (weights.config.vocab_size < eval::TaskVocab::size)
    bad_flag("--model", "has vocab_size " + std::to_string(weights.config.vocab_size) +
                            "; the demo's tasks need a model trained on them (vocab_size >= 512)");
  std::unique_ptr<runtime::ModelBackend> backend = make_backend(device, weights, 0);

  eval::VariantGrid grid;
  grid.budgets = {o.budget_tokens};
  grid.k_actives = {0};
  grid.taus = {0.5};
  eval::EvalOptions options;
  options.lengths = {len};
  options.samples = 1;
  options.seed = o.seed;
  options.batch = 8;
  options.decode.block_size = o.block_size;
  options.decode.steps = o.block_size;
  runtime::resolve_options(options.decode, weights.config);  // a bad flag stops before the banner
  std::printf("losa demo: %s on %s, one %lld-token prompt per task, block %d, budget %d\n", o.model_dir.c_str(),
              device.c_str(), static_cast<long long>(len), o.block_size, o.budget_tokens);
  const std::vector<eval::EvalRecord> records =
      eval::evaluate(*backend, options, [&](int64_t l) { return eval::make_variants(grid, l); });
  for (eval::Task task : options.tasks) {  // records come variant by variant: show them task by task
    const eval::TaskExample ex = eval::make_example(task, len, eval::eval_seed(o.seed, 0));
    std::printf("\n== %s: %s\n   expected: %s\n", eval::task_name(task), eval::TaskVocab::render(ex.prompt, 24).c_str(),
                eval::TaskVocab::render(ex.answer).c_str());
    for (const eval::EvalRecord& r : records) {
      if (r.task != eval::task_name(task)) continue;
      const std::string mode = r.mode + (r.options.empty() ? "" : " " + r.options);
      std::printf("   %-30s %-7s density %5.1f%%  %9.1f us/block  %s\n", mode.c_str(), r.accuracy > 0 ? "right" : "wrong",
                  100.0 * r.density, r.time_per_block_us, eval::TaskVocab::render(r.generated.at(0)).c_str());
    }
  }
  return 0;
}

}  // namespace losa::tools
