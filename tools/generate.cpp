#include "generate.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "cli_errors.hpp"
#include "losa/errors.hpp"
#include "losa/runtime/decoder.hpp"

namespace losa::tools {
namespace {

using namespace losa::runtime;

std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  std::string item;
  std::istringstream in(text);
  while (in >> item) {
    std::istringstream parts(item);
    std::string one;
    while (std::getline(parts, one, ',')) {
      if (one.empty()) continue;
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(one, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != one.size() || v < 0 || v > INT32_MAX)
        bad_flag(flag, "holds '" + one + "', which is not a token id");
      ids.push_back(static_cast<int32_t>(v));
    }
  }
  return ids;
}

std::vector<std::vector<int32_t>> read_prompts(const GenerateFlags& f) {
  if (f.tokens.empty() == f.tokens_file.empty())
    bad_flag("--tokens", "or --tokens-file: give exactly one of them");
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& t : f.tokens) prompts.push_back(parse_ids(t, "--tokens"));
  if (!f.tokens_file.empty()) {
    std::ifstream in(f.tokens_file);
    if (!in) bad_flag("--tokens-file", "cannot read '" + f.tokens_file + "'");
    std::string line;
    while (std::getline(in, line))
      if (line.find_first_not_of(" \t\r") != std::string::npos)
        prompts.push_back(parse_ids(line, "--tokens-file"));
    if (prompts.empty()) bad_flag("--tokens-file", "holds no prompt (one per line)");
  }
  return prompts;
}

DecodeOptions decode_options(const GenerateFlags& f) {
  DecodeOptions o;
  o.block_size = f.block_size;
  o.steps = f.steps;
  o.strategy = parse_strategy(f.strategy);
  o.threshold = f.threshold;
  o.sampling = {f.temperature, f.top_k, f.top_p};
  o.seed = f.seed;
  o.max_new_tokens = f.max_new_tokens;
  o.mask_token_id = f.mask_id;
  o.stop_ids = f.stop_ids;
  o.use_model_eos = !f.ignore_eos;
  ModeConfig& m = o.forward.mode;
  m.mode = parse_mode(f.mode);
  if (f.attend != "own" && f.attend != "union") bad_flag("--attend", "must be own or union, got '" + f.attend + "'");
  m.attend = f.attend == "union" ? Attend::union_ : Attend::own;
  m.budget_tokens = f.budget;
  m.tau = f.tau;
  m.active_rule = f.k_active >= 0 ? ActiveRule::top_k : ActiveRule::tau;
  m.k_active = std::max(0, f.k_active);
  m.sparsed_skip = f.skip;
  m.sparsed_select = f.select;
  o.forward.page_size = f.page_size;
  o.forward.kv_dtype = parse_dtype(f.kv_dtype, "--kv-dtype");
  o.forward.prefill_chunk = f.prefill_chunk;
  if ((m.mode == Mode::quest || m.mode == Mode::losa) && f.budget < f.page_size)
    bad_flag("--budget", "must be >= the page size (--page-size " + std::to_string(f.page_size) +
                             "), got " + std::to_string(f.budget));
  if (f.prefill_chunk < 1) bad_flag("--prefill-chunk", "must be >= 1");
  if (f.threads < 0) bad_flag("--threads", "must be >= 0 (0 = all cores)");
  return o;
}

void print_progress(const DecodeProgress& p) {
  const double rate = p.seconds > 0 ? p.tokens / p.seconds : 0.0;
  const double eta = p.blocks_done > 0 ? p.seconds / p.blocks_done * (p.blocks_total - p.blocks_done) : 0.0;
  std::fprintf(stderr, "\r[losa generate] block %lld/%lld, %lld tokens, %.1f tokens/s, density %.1f%%, ETA %.0fs  ",
               static_cast<long long>(p.blocks_done), static_cast<long long>(p.blocks_total),
               static_cast<long long>(p.tokens), rate, 100.0 * p.mean_density, eta);
  if (p.blocks_done == p.blocks_total) std::fprintf(stderr, "\n");
}

nlohmann::json result_json(const GenerateFlags& f, const Weights& w, const DecodeOptions& o,
                           const std::vector<std::vector<int32_t>>& prompts, const DecodeResult& r) {
  nlohmann::json seqs = nlohmann::json::array();
  int64_t tokens = 0;
  for (size_t s = 0; s < r.sequences.size(); ++s) {
    const SequenceResult& q = r.sequences[s];
    nlohmann::json blocks = nlohmann::json::array();
    for (const BlockRecord& b : q.blocks)
      blocks.push_back({{"block", b.block}, {"steps", b.steps}, {"committed", b.committed},
                        {"active_tokens", b.active_tokens}, {"density", b.density},
                        {"seconds", b.seconds}});
    tokens += static_cast<int64_t>(q.generated.size());
    seqs.push_back({{"prompt_tokens", prompts[s].size()}, {"generated", q.generated},
                    {"stopped", q.stopped}, {"blocks", blocks}});
  }
  return {{"model", w.source},
          {"device", f.device},
          {"mode", f.mode},
          {"options",
           {{"block_size", r.block_size}, {"steps", r.steps}, {"strategy", f.strategy},
            {"threshold", f.threshold}, {"temperature", f.temperature}, {"top_k", f.top_k},
            {"top_p", f.top_p}, {"seed", f.seed}, {"max_new_tokens", f.max_new_tokens},
            {"budget", f.budget}, {"tau", f.tau}, {"k_active", f.k_active}, {"skip", f.skip},
            {"select", f.select}, {"attend", f.attend}, {"page_size", f.page_size},
            {"kv_dtype", f.kv_dtype}, {"stop_ids", o.stop_ids}}},
          {"seconds", r.seconds},
          {"tokens_per_second", r.seconds > 0 ? tokens / r.seconds : 0.0},
          {"sequences", seqs}};
}

int generate(const GenerateFlags& f) {
  if (f.model_dir.empty() == f.random_weights.empty())
    bad_flag("--model", "or --random-weights: give exactly one of them");
  if (f.device == "cuda")
    bad_flag("--device", "cuda: the CUDA backend of the runtime is not available in this build "
                         "(not built yet); use --device cpu");
  if (f.device != "cpu") bad_flag("--device", "must be cpu or cuda, got '" + f.device + "'");
  const auto prompts = read_prompts(f);
  const DecodeOptions options = decode_options(f);
  std::ofstream json_out;
  if (!f.json_path.empty()) json_out = open_output(f.json_path, "--json");
  const Weights weights = f.model_dir.empty()
                              ? make_random_weights(load_model_config(f.random_weights), f.weights_seed, f.threads)
                              : load_checkpoint(f.model_dir);
  resolve_options(options, weights.config);  // flag errors before any allocation
  auto backend = make_cpu_backend(weights, f.threads);
  const bool show = f.progress || ::isatty(2);
  const DecodeResult r = decode(*backend, prompts, options,
                                show ? std::function<void(const DecodeProgress&)>(print_progress) : nullptr);
  for (const SequenceResult& s : r.sequences) {
    std::string line;
    for (size_t i = 0; i < s.generated.size(); ++i) line += (i ? " " : "") + std::to_string(s.generated[i]);
    std::printf("%s\n", line.c_str());
  }
  if (json_out.is_open()) {
    json_out << result_json(f, weights, resolve_options(options, weights.config), prompts, r).dump(2) << "\n";
    close_output(json_out, f.json_path, "--json");
  }
  return 0;
}

}  // namespace

CLI::App* add_generate_command(CLI::App& app, GenerateFlags& f) {
  CLI::App* c = app.add_subcommand(
      "generate",
      "Decode token-id prompts with a block-diffusion LM (SDAR/TraDo): prefill, blocks of mask "
      "tokens, denoising steps, commit; any attention mode. stdout: the generated ids of each "
      "prompt on one line (up to and including the first eos).");
  c->add_option("--model", f.model_dir, "Hugging Face model folder (config.json, safetensors)");
  c->add_option("--random-weights", f.random_weights, "config.json (or its folder): random bf16 weights of that shape");
  c->add_option("--weights-seed", f.weights_seed, "seed of --random-weights")->capture_default_str();
  // One value per --tokens (quote it): repeated flags add prompts.
  c->add_option("--tokens", f.tokens, "a prompt's token ids (space or comma separated); repeat for more prompts")
      ->allow_extra_args(false);
  c->add_option("--tokens-file", f.tokens_file, "prompts, one per line");
  c->add_option("--mode", f.mode, "attention mode: dense, quest, losa, sparsed")->capture_default_str();
  c->add_option("--budget", f.budget, "QUEST/LoSA token budget per row (>= page size)")->capture_default_str();
  c->add_option("--tau", f.tau, "LoSA change share (the tau rule)")->capture_default_str();
  c->add_option("--k-active", f.k_active, "LoSA active tokens: the top-k rule instead of tau");
  c->add_option("--skip", f.skip, "SparseD full-step fraction")->capture_default_str();
  c->add_option("--select", f.select, "SparseD page fraction kept")->capture_default_str();
  c->add_option("--attend", f.attend, "own (each row its pages) or union")->capture_default_str();
  c->add_option("--page-size", f.page_size, "KV page size (16, 32, 64)")->capture_default_str();
  c->add_option("--kv-dtype", f.kv_dtype, "KV cache storage: bf16, f16, f32")->capture_default_str();
  c->add_option("--max-new-tokens", f.max_new_tokens, "tokens to generate per prompt")->capture_default_str();
  c->add_option("--block-size", f.block_size, "block size B (0: the model folder's)")->capture_default_str();
  c->add_option("--steps", f.steps, "denoising steps per block")->capture_default_str();
  c->add_option("--strategy", f.strategy, "sequential, low_confidence_static, low_confidence_dynamic")->capture_default_str();
  c->add_option("--threshold", f.threshold, "low_confidence_dynamic's confidence threshold")->capture_default_str();
  c->add_option("--temperature", f.temperature, "0 = greedy")->capture_default_str();
  c->add_option("--top-k", f.top_k, "0 = off")->capture_default_str();
  c->add_option("--top-p", f.top_p, "1 = off")->capture_default_str();
  c->add_option("--seed", f.seed, "sampling seed")->capture_default_str();
  c->add_option("--stop-ids", f.stop_ids, "stop token ids besides the model's eos ids");
  c->add_flag("--ignore-eos", f.ignore_eos, "do not stop at the model's eos ids");
  c->add_option("--mask-id", f.mask_id, "mask token id (-1: the model folder's)")->capture_default_str();
  c->add_option("--device", f.device, "cpu or cuda")->capture_default_str();
  c->add_option("--threads", f.threads, "CPU threads (0: all cores)")->capture_default_str();
  c->add_option("--prefill-chunk", f.prefill_chunk, "prefill chunk in tokens (rounded down to whole blocks)")->capture_default_str();
  c->add_option("--json", f.json_path, "write the generated ids and per-block stats as JSON");
  c->add_flag("--progress", f.progress, "progress line on stderr even when it is not a terminal");
  return c;
}

int run_generate(const GenerateFlags& flags) { return generate(flags); }

}  // namespace losa::tools
