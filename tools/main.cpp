// The `losa` command-line program. With no subcommand it runs the demo on its built-in defaults:
// the shipped model (models/losa-tasks-6l) decoding one long-context prompt per task in every mode.
#include <CLI/CLI.hpp>
#include <climits>
#include <cstdint>
#include <fstream>

#include "cli_errors.hpp"
#include "demo.hpp"
#include "demo_model.hpp"
#include "generate.hpp"
#include "losa/errors.hpp"
#include "eval.hpp"
#include "tasks.hpp"
#include "tokenize.hpp"
#ifdef LOSA_WITH_BENCH
#include "bench.hpp"
#include "bench_model.hpp"
#endif

int main(int argc, char** argv) {
  using namespace losa;
  CLI::App app{"losa: locality-aware sparse attention for block-wise diffusion LMs"};
  app.require_subcommand(0, 1);

  tools::DemoOptions demo = tools::default_demo_options();
  std::string dtype = "bf16";
  CLI::App* demo_cmd = app.add_subcommand(
      "demo", "Decode one long-context prompt per task with the shipped model (or --model DIR) in every "
              "attention mode: answers, correctness, density and time per block side by side (the default "
              "command). With --synthetic: simulate a block of denoising steps of one attention layer on a "
              "synthetic workload and compare every mode against dense.\n" +
                  synthetic_workload_description());
  bool synthetic = false;
  demo_cmd->add_flag("--synthetic", synthetic, "the synthetic one-layer workload instead of a model");
  // Flags of one kind of demo only, each kind in its own group: the help lists them apart, and
  // the other kind refuses them by name (from the group, so no second list can drift).
  CLI::Option_group* workload_flags = demo_cmd->add_option_group("With --synthetic");
  tools::ModelDemoOptions model_demo;
  CLI::Option_group* model_flags = demo_cmd->add_option_group("Without --synthetic");
  demo_cmd->add_option("--block", demo.workload.shape.block_size, "block size B")->capture_default_str();
  demo_cmd->add_option("--budget", demo.budget_tokens, "token budget per row of the sparse modes")->capture_default_str();
  demo_cmd->add_option("--seed", demo.workload.seed, "random seed")->capture_default_str();
  workload_flags->add_option("--prefix-len", demo.workload.prefix_len, "prefix tokens")->capture_default_str();
  workload_flags->add_option("--q-heads", demo.workload.shape.num_q_heads, "query heads")->capture_default_str();
  workload_flags->add_option("--kv-heads", demo.workload.shape.num_kv_heads, "KV heads")->capture_default_str();
  workload_flags->add_option("--head-dim", demo.workload.shape.head_dim, "head dim (64, 128)")->capture_default_str();
  workload_flags->add_option("--page-size", demo.workload.page_size, "page size (16, 32, 64)")->capture_default_str();
  workload_flags->add_option("--dtype", dtype, "KV storage: bf16, f16, f32")->capture_default_str();
  workload_flags->add_option("--steps", demo.steps, "denoising steps in the block")->capture_default_str();
  workload_flags->add_option("--tau", demo.tau, "LoSA change share")->capture_default_str();
  workload_flags->add_option("--k-active", demo.k_active, "LoSA active tokens (top-k rule)")->capture_default_str();
  workload_flags->add_option("--changing", demo.workload.changing_tokens, "tokens that change a lot per step")->capture_default_str();
  workload_flags->add_option("--drift", demo.workload.drift, "relative drift of the other tokens per step")->capture_default_str();
  workload_flags->add_option("--skip", demo.sparsed_skip, "SparseD full-step fraction")->capture_default_str();
  workload_flags->add_option("--select", demo.sparsed_select, "SparseD page fraction kept")->capture_default_str();
  workload_flags->add_option("--json", demo.json_path, "write results as JSON to this file");
  model_flags->add_option("--model", model_demo.model_dir,
                          "a model trained on the task suite (losa tasks); default: the shipped " LOSA_SHIPPED_MODEL_DIR);
  model_flags->add_option("--context", model_demo.context_len, "prompt tokens (0: 32768 on a GPU, 1024 on a CPU)");
  model_flags->add_option("--device", model_demo.device, "cpu or cuda (default: cuda where present)");
  // The first flag given of a group that does not apply: refused by name.
  auto refuse_given = [](const CLI::Option_group* group, const std::string& reason) {
    for (const CLI::Option* flag : group->get_options())
      if (flag->count() > 0) tools::bad_flag(flag->get_name(), reason);
  };

  tools::TokenizeOptions tokenize;
  CLI::App* tokenize_cmd = tools::add_tokenize_command(app, tokenize);
  tools::TasksOptions tasks;
  CLI::App* tasks_cmd = tools::add_tasks_command(app, tasks);
  tools::EvalFlags eval;
  CLI::App* eval_cmd = tools::add_eval_command(app, eval);
  tools::GenerateFlags generate;
  CLI::App* generate_cmd = tools::add_generate_command(app, generate);

  CLI::App* bench_cmd = app.add_subcommand(
      "bench", "Time every attention mode on the GPU (synthetic workload, 32 q heads, 8 KV heads, "
               "head dim 128, bf16, page 16) and write JSON: time, density, bytes, bandwidth, "
               "ratio to dense, stage breakdown, density curve, whole blocks.");
  CLI::App* bench_model_cmd = app.add_subcommand(
      "bench-model", "Time the whole model on the GPU: prefill tokens/s, the GEMMs against the measured bf16 peak "
                     "and copy bandwidth, time per denoising step and tokens/s per attention mode and batch, and "
                     "attention's share of a step; writes JSON.");
#ifdef LOSA_WITH_BENCH
  tools::BenchOptions bench;
  bool quick = false;
  bench_cmd->add_option("--lengths", bench.prefix_lens, "prefix lengths")->capture_default_str();
  bench_cmd->add_option("--blocks", bench.block_sizes, "block sizes")->capture_default_str();
  bench_cmd->add_option("--budgets", bench.budgets, "QUEST token budgets")->capture_default_str();
  bench_cmd->add_option("--k-active", bench.k_actives, "LoSA active-token counts (B is added)")->capture_default_str();
  bench_cmd->add_option("--tau", bench.tau, "LoSA tau")->capture_default_str();
  bench_cmd->add_option("--select", bench.sparsed_selects, "SparseD select fractions")->capture_default_str();
  bench_cmd->add_option("--block-steps", bench.block_steps, "steps per block for whole-block numbers")->capture_default_str();
  bench_cmd->add_option("--modes", bench.modes, "measurements: dense quest losa tau sparsed complement (LoSA top-k with losa_complement; not by default)")->capture_default_str();
  bench_cmd->add_flag("!--no-curve", bench.density_curve, "skip the density curve and whole blocks");
  bench_cmd->add_option("--reps", bench.reps, "timed repetitions per layer")->capture_default_str();
  bench_cmd->add_option("--warmup", bench.warmup, "warm-up repetitions")->capture_default_str();
  bench_cmd->add_option("--json", bench.json_path, "results file")->capture_default_str();
  bench_cmd->add_option("--selection", bench.selection_path, "write the headline LoSA step's pages (JSON)");
  bench_cmd->add_option("--batch-seqs", bench.batch_seqs, "sequences of the batch case (0: skip)")->capture_default_str();
  bench_cmd->add_option("--batch-len", bench.batch_len, "prefix length of the batch's longest sequence")->capture_default_str();
  bench_cmd->add_option("--model-layers", bench.model_layers, "layers of the whole-model step (0: skip)")->capture_default_str();
  bench_cmd->add_flag("!--no-bounds8", bench.bounds8, "skip the 8-bit bounds rows");
  bench_cmd->add_option("--splits", bench.force_splits, "attention splits of every engine (0: the plan's)")
      ->capture_default_str();
  bench_cmd->add_option("--attend", bench.attend, "selecting modes' rows attend their own pages (own) or the union")
      ->capture_default_str();
  bench_cmd->add_option("--attention-stages", bench.force_stages,
                        "pipeline stages of the attention kernel, 2 or 3 (0: the engine's choice for the device and head dim)")
      ->capture_default_str();
  bench_cmd->add_option("--attention-mma", bench.attention_mma,
                        "tensor-core path of the unmasked attention (dense, union, prefill): auto, sync (mma.sync) or wgmma (sm_90a)")
      ->capture_default_str();
  bench_cmd->add_flag("--quick", quick, "one small configuration (8K, B=16, budget 256): a smoke run");

  tools::BenchModelOptions bench_model;
  std::vector<std::string> batch_specs;
  bench_model_cmd->add_option("--model", bench_model.model_dir, "model folder");
  bench_model_cmd->add_option("--random-weights", bench_model.random_weights, "config.json: random bf16 weights of its shape");
  bench_model_cmd->add_option("--prefill", bench_model.prefill_lens, "prompt lengths to prefill")->capture_default_str();
  bench_model_cmd->add_option("--batches", batch_specs, "batch shapes SxL (default 1x65536 4x65536 8x32768)");
  bench_model_cmd->add_option("--modes", bench_model.modes, "attention modes")->capture_default_str();
  bench_model_cmd->add_option("--budget", bench_model.budget, "token budget of quest/losa")->capture_default_str();
  bench_model_cmd->add_flag("--bounds8", bench_model.bounds8,
                            "also time quest and losa with 8-bit page bounds (rows quest+bounds8, losa+bounds8)");
  bench_model_cmd->add_option("--block-size", bench_model.block_size, "block size B")->capture_default_str();
  bench_model_cmd->add_option("--steps", bench_model.steps, "denoising steps per block")->capture_default_str();
  bench_model_cmd->add_option("--prefill-chunk", bench_model.prefill_chunk, "tokens per prefill chunk")->capture_default_str();
  bench_model_cmd->add_option("--reps", bench_model.reps, "blocks timed per mode")->capture_default_str();
  bench_model_cmd->add_option("--json", bench_model.json_path, "results file")->capture_default_str();
  bench_model_cmd->add_flag("--stages", bench_model.stages,
                            "also break each mode's later steps down by kernel group (event marks in a second "
                            "capture of the step, summed over layers)");
  bench_model_cmd->add_flag("--gemm-sweep", bench_model.gemm_sweep,
                            "time only the decode-shape GEMM's instances and K splits (no weights, no model)");
#else
  // GPU-only subcommands are registered in every build and take any flag, so that they say why
  // they cannot run here (below) instead of CLI11's "The following argument was not expected".
  for (CLI::App* gpu_only : {bench_cmd, bench_model_cmd}) {
    gpu_only->description(gpu_only->get_description() +
                          " Not in this build: it needs the GPU backend (and -DLOSA_BENCH=ON).");
    gpu_only->allow_extras();
  }
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (generate_cmd->parsed())
    return tools::run_reporting_errors(*generate_cmd, [&] { return tools::run_generate(generate); });
  // What the results files record as the command that made them.
  std::string command_line = "losa";
  for (int i = 1; i < argc; ++i) command_line += std::string(" ") + argv[i];
  if (eval_cmd->parsed())
    return tools::run_reporting_errors(*eval_cmd, [&] { return tools::run_eval(eval, command_line); });
  if (tasks_cmd->parsed())
    return tools::run_reporting_errors(*tasks_cmd, [&] { return tools::run_tasks(tasks); });
  if (tokenize_cmd->parsed())
    return tools::run_reporting_errors(*tokenize_cmd, [&] { return tools::run_tokenize(*tokenize_cmd, tokenize); });
  if (bench_cmd->parsed() || bench_model_cmd->parsed()) {
    const CLI::App& command = bench_cmd->parsed() ? *bench_cmd : *bench_model_cmd;
    return tools::run_reporting_errors(command, [&]() -> int {
#ifdef LOSA_WITH_BENCH
      if (bench_cmd->parsed()) {
        if (quick) {
          bench.prefix_lens = {8192};
          bench.block_sizes = {16};
          bench.budgets = {256};
          bench.headline_len = 8192;
          bench.reps = 10;
          bench.batch_seqs = 2;
          bench.batch_len = 8192;
          bench.model_layers = 4;
        }
        return tools::run_bench(bench, command_line);
      }
      if (bench_model.model_dir.empty() == bench_model.random_weights.empty())
        tools::bad_flag("--model", "or --random-weights: give exactly one of them");
      if (!batch_specs.empty()) {
        bench_model.batches.clear();
        for (const std::string& spec : batch_specs) {
          // SxL: S sequences, the longest prompt L tokens; both positive integers.
          const size_t x = spec.find('x');
          long long seqs = 0, length = 0;
          size_t used_seqs = 0, used_length = 0;
          try {
            if (x != std::string::npos) {
              seqs = std::stoll(spec.substr(0, x), &used_seqs);
              length = std::stoll(spec.substr(x + 1), &used_length);
            }
          } catch (const std::exception&) {
            used_seqs = used_length = 0;
          }
          if (x == std::string::npos || used_seqs != x || used_length != spec.size() - x - 1 || seqs < 1 ||
              seqs > INT32_MAX || length < 1)
            tools::bad_flag("--batches", "entries look like 4x65536 (sequences x tokens, both >= 1), got '" + spec + "'");
          bench_model.batches.emplace_back(static_cast<int>(seqs), static_cast<int64_t>(length));
        }
      }
      return tools::run_bench_model(bench_model, command_line);
#elif defined(LOSA_WITH_CUDA)
      throw tools::FlagError("losa " + command.get_name() + " was left out of this build (configured with "
                             "-DLOSA_BENCH=OFF): configure with -DLOSA_BENCH=ON and rebuild");
#else
      throw tools::FlagError(tools::gpu_not_built("losa " + command.get_name()));
#endif
    });
  }
  // The default command. Flags of the other kind of demo are refused by name rather than ignored.
  if (!synthetic)
    return tools::run_reporting_errors(*demo_cmd, [&] {
      refuse_given(workload_flags, "applies to the synthetic workload: add --synthetic");
      if (model_demo.model_dir.empty()) {
        model_demo.model_dir = LOSA_SHIPPED_MODEL_DIR;
        if (!std::ifstream(model_demo.model_dir + "/config.json"))
          tools::bad_flag("--model", "is not given and the shipped model is not at " + model_demo.model_dir +
                                         ": pass --model DIR, or --synthetic for the synthetic workload");
      }
      model_demo.budget_tokens = demo.budget_tokens;
      model_demo.block_size = demo.workload.shape.block_size;
      model_demo.seed = demo.workload.seed;
      return tools::run_model_demo(model_demo);
    });
  return tools::run_reporting_errors(*demo_cmd, [&] {
    refuse_given(model_flags, "does not apply with --synthetic");
    demo.workload.dtype = parse_dtype(dtype, "--dtype");
    return tools::run_demo(demo);
  });
}
