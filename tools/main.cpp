// The `losa` command-line program. With no subcommand it runs the demo on its built-in defaults.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "demo.hpp"
#include "losa/errors.hpp"

int main(int argc, char** argv) {
  using namespace losa;
  CLI::App app{"losa: locality-aware sparse attention for block-wise diffusion LMs"};
  app.require_subcommand(0, 1);

  tools::DemoOptions demo = tools::default_demo_options();
  std::string dtype = "bf16";
  CLI::App* demo_cmd = app.add_subcommand(
      "demo", "Simulate a block of denoising steps on a synthetic workload and compare every "
              "attention mode against dense (the default command).\n" +
                  synthetic_workload_description());
  demo_cmd->add_option("--prefix-len", demo.workload.prefix_len, "prefix tokens")->capture_default_str();
  demo_cmd->add_option("--block", demo.workload.shape.block_size, "block size B")->capture_default_str();
  demo_cmd->add_option("--q-heads", demo.workload.shape.num_q_heads, "query heads")->capture_default_str();
  demo_cmd->add_option("--kv-heads", demo.workload.shape.num_kv_heads, "KV heads")->capture_default_str();
  demo_cmd->add_option("--head-dim", demo.workload.shape.head_dim, "head dim (64, 128)")->capture_default_str();
  demo_cmd->add_option("--page-size", demo.workload.page_size, "page size (16, 32, 64)")->capture_default_str();
  demo_cmd->add_option("--dtype", dtype, "KV storage: bf16, f16, f32")->capture_default_str();
  demo_cmd->add_option("--steps", demo.steps, "denoising steps in the block")->capture_default_str();
  demo_cmd->add_option("--budget", demo.budget_tokens, "QUEST token budget per row")->capture_default_str();
  demo_cmd->add_option("--tau", demo.tau, "LoSA change share")->capture_default_str();
  demo_cmd->add_option("--k-active", demo.k_active, "LoSA active tokens (top-k rule)")->capture_default_str();
  demo_cmd->add_option("--changing", demo.workload.changing_tokens, "tokens that change a lot per step")->capture_default_str();
  demo_cmd->add_option("--drift", demo.workload.drift, "relative drift of the other tokens per step")->capture_default_str();
  demo_cmd->add_option("--skip", demo.sparsed_skip, "SparseD full-step fraction")->capture_default_str();
  demo_cmd->add_option("--select", demo.sparsed_select, "SparseD page fraction kept")->capture_default_str();
  demo_cmd->add_option("--seed", demo.workload.seed, "random seed")->capture_default_str();
  demo_cmd->add_option("--json", demo.json_path, "write results as JSON to this file");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    demo.workload.dtype = parse_dtype(dtype, "--dtype");
    return tools::run_demo(demo);  // the only command so far, and the default
  } catch (const ArgumentError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
