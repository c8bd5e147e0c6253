#include "generate.hpp"


#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

#include "answer_printer.hpp"
#include "backend_choice.hpp"
#include "cli_errors.hpp"
#include "generate_prompts.hpp"
#include "losa/errors.hpp"
#include "losa/runtime/decoder.hpp"
#include "losa/runtime/tokenizer.hpp"

namespace losa::tools {
namespace {

using namespace losa::runtime;

// The first flag of each prompt kind the user gave, for messages.
std::string text_prompt_flag(const GenerateFlags& f) {
  return !f.prompts.empty() ? "--prompt" : !f.prompt_files.empty() ? "--prompt-file" : "--prompts-jsonl";
}

/// Checks that the prompt flags make sense together; true for text prompts.
bool wants_text(const GenerateFlags& f) {
  const bool text = has_text_prompts(f), tokens = has_token_prompts(f);
  if (text && tokens)
    bad_flag(text_prompt_flag(f), std::string("cannot be combined with ") +
                                      (f.tokens.empty() ? "--tokens-file" : "--tokens") +
                                      ": give text prompts or token ids, not both");
  if (!text && !tokens)
    bad_flag("--prompt", "is missing: give the prompts as text (--prompt, --prompt-file, "
                         "--prompts-jsonl) or as token ids (--tokens, --tokens-file)");
  const std::pair<bool, const char*> text_only[] = {
      {f.chat, "--chat"}, {!f.system.empty(), "--system"}, {f.no_think, "--no-think"},
      {f.enable_thinking, "--enable-thinking"}, {!f.stop_strings.empty(), "--stop"}};
  for (const auto& [given, flag] : text_only)
    if (given && !text) bad_flag(flag, "needs text prompts (--prompt, --prompt-file, --prompts-jsonl)");
  for (const auto& [given, flag] : {text_only[1], text_only[2], text_only[3]})
    if (given && !f.chat) bad_flag(flag, "needs --chat");
  if (f.no_think && f.enable_thinking) bad_flag("--no-think", "contradicts --enable-thinking");
  return text;
}

// The model folder: --model, or the folder of --random-weights' config.json.
std::string model_folder(const GenerateFlags& f) {
  if (!f.model_dir.empty()) return f.model_dir;
  if (std::filesystem::is_directory(f.random_weights)) return f.random_weights;
  const std::string parent = std::filesystem::path(f.random_weights).parent_path().string();
  return parent.empty() ? "." : parent;
}

std::string model_flag(const GenerateFlags& f) { return f.model_dir.empty() ? "--random-weights" : "--model"; }

Tokenizer load_tokenizer(const GenerateFlags& f) {
  try {
    return Tokenizer::load(model_folder(f));
  } catch (const ArgumentError& e) {
    bad_flag(model_flag(f), reason_of(e) + "; text prompts (" + text_prompt_flag(f) +
                                ") need the tokenizer files in the model folder");
  }
}

/// The tokenizer must index the model's embedding and agree on the mask token. Sets the options'
/// sampling limit to the tokenizer's size: the embedding rows past it are not tokens.
void fit_tokenizer(const Tokenizer& tokenizer, const ModelConfig& config, const GenerateFlags& f,
                   DecodeOptions& options) {
  if (tokenizer.vocab_size() > config.vocab_size)
    bad_flag(model_flag(f), "has a tokenizer of " + std::to_string(tokenizer.vocab_size()) +
                                " tokens, more than config.json's vocab_size " +
                                std::to_string(config.vocab_size));
  const std::optional<TokenId> mask = tokenizer.mask_token_id();
  if (f.mask_id < 0 && mask && config.mask_token_id >= 0 && *mask != config.mask_token_id)
    bad_flag(model_flag(f), "has a tokenizer whose mask token is id " + std::to_string(*mask) +
                                " but config.json's mask_token_id is " +
                                std::to_string(config.mask_token_id) + " (--mask-id chooses)");
  if (f.mask_id < 0 && mask && config.mask_token_id < 0) options.mask_token_id = *mask;
  options.sampling.vocab_limit = tokenizer.vocab_size();
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
  const bool delta_rule = f.delta_min_given;
  if (delta_rule && !(std::isfinite(f.delta_min) && f.delta_min > 0.0))
    bad_flag("--delta-min", "must be finite and > 0 (left out: the tau rule), got " + std::to_string(f.delta_min));
  if (delta_rule && f.k_active >= 0) bad_flag("--delta-min", "and --k-active choose two active-set rules; give one");
  if (delta_rule && f.tau_given) bad_flag("--delta-min", "and --tau choose two active-set rules; give one");
  if ((delta_rule || f.k_active >= 0) && m.mode != Mode::losa)
    bad_flag(delta_rule ? "--delta-min" : "--k-active", std::string("applies to --mode losa, not ") + mode_name(m.mode));
  m.active_rule = f.k_active >= 0 ? ActiveRule::top_k : delta_rule ? ActiveRule::delta_min : ActiveRule::tau;
  m.k_active = std::max(0, f.k_active);
  if (delta_rule) m.delta_min = f.delta_min;
  m.losa_complement = f.complement;
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

// `answers`: the text of each sequence and of each of its blocks (text prompts), or nullptr.
nlohmann::json result_json(const GenerateFlags& f, const Weights& w, const DecodeOptions& o,
                           const std::vector<std::vector<int32_t>>& prompts, const DecodeResult& r,
                           const std::vector<AnswerPrinter::Answer>* answers) {
  nlohmann::json seqs = nlohmann::json::array();
  int64_t tokens = 0;
  for (size_t s = 0; s < r.sequences.size(); ++s) {
    const SequenceResult& q = r.sequences[s];
    nlohmann::json blocks = nlohmann::json::array();
    for (size_t i = 0; i < q.blocks.size(); ++i) {
      const BlockRecord& b = q.blocks[i];
      blocks.push_back({{"block", b.block}, {"steps", b.steps}, {"committed", b.committed},
                        {"active_tokens", b.active_tokens}, {"density", b.density},
                        {"seconds", b.seconds}});
      if (answers) blocks.back()["text"] = (*answers)[s].block_texts.at(i);
    }
    tokens += static_cast<int64_t>(q.generated.size());
    seqs.push_back({{"prompt_tokens", prompts[s].size()}, {"generated", q.generated},
                    {"stopped", q.stopped}, {"blocks", blocks}});
    if (answers) {  // text prompts: their ids (to rerun with --tokens) and the answer's text
      seqs.back()["prompt_ids"] = prompts[s];
      seqs.back()["text"] = (*answers)[s].text;
      seqs.back()["stop_string"] = (*answers)[s].stop_string;
    }
  }
  return {{"model", w.source},
          {"device", f.device},
          {"mode", f.mode},
          {"options",
           {{"block_size", r.block_size}, {"steps", r.steps}, {"strategy", f.strategy},
            {"threshold", f.threshold}, {"temperature", f.temperature}, {"top_k", f.top_k},
            {"top_p", f.top_p}, {"seed", f.seed}, {"max_new_tokens", f.max_new_tokens},
            {"budget", f.budget}, {"tau", f.tau}, {"k_active", f.k_active}, {"delta_min", f.delta_min_given ? nlohmann::json(f.delta_min) : nlohmann::json(nullptr)},
            {"complement", f.complement}, {"skip", f.skip},
            {"select", f.select}, {"attend", f.attend}, {"page_size", f.page_size},
            {"kv_dtype", f.kv_dtype}, {"stop_ids", o.stop_ids}, {"stop_strings", f.stop_strings}}},
          {"seconds", r.seconds},
          {"tokens_per_second", r.seconds > 0 ? tokens / r.seconds : 0.0},
          {"sequences", seqs}};
}

int generate(const GenerateFlags& f) {
  if (f.model_dir.empty() == f.random_weights.empty())
    bad_flag("--model", "or --random-weights: give exactly one of them");
  check_device_flag(f.device);
  const bool text = wants_text(f);
  std::optional<Tokenizer> tokenizer;
  std::optional<AnswerPrinter> printer;
  std::vector<std::vector<int32_t>> prompts;
  if (text) {
    const std::vector<TextPrompt> texts = read_text_prompts(f);
    tokenizer = load_tokenizer(f);
    prompts = encode_text_prompts(texts, f, *tokenizer);
    printer.emplace(*tokenizer, f.stop_strings, static_cast<int>(prompts.size()), stdout);
  } else {
    prompts = read_token_prompts(f);
  }
  DecodeOptions options = decode_options(f);
  std::ofstream json_out;
  if (!f.json_path.empty()) json_out = open_output(f.json_path, "--json");
  const Weights weights = f.model_dir.empty()
                              ? make_random_weights(load_model_config(f.random_weights), f.weights_seed, f.threads)
                              : load_checkpoint(f.model_dir);
  if (tokenizer) fit_tokenizer(*tokenizer, weights.config, f, options);
  resolve_options(options, weights.config);  // flag errors before any allocation
  std::unique_ptr<ModelBackend> backend = make_backend(f.device, weights, f.threads);
  // A progress line would tear an answer streaming to the same terminal: ask with --progress.
  const bool streaming_to_terminal = text && prompts.size() == 1 && ::isatty(1);
  const bool show = f.progress || (::isatty(2) && !streaming_to_terminal);
  const std::function<void(const DecodeProgress&)> progress =
      show ? std::function<void(const DecodeProgress&)>(print_progress) : nullptr;
  const DecodeResult r =
      decode(*backend, prompts, options, progress,
             printer ? BlockObserver([&](const FinalBlock& b) { return printer->on_block(b); }) : nullptr);
  if (!text) {
    for (const SequenceResult& s : r.sequences) {
      std::string line;
      for (size_t i = 0; i < s.generated.size(); ++i) line += (i ? " " : "") + std::to_string(s.generated[i]);
      std::printf("%s\n", line.c_str());
    }
  }
  if (json_out.is_open()) {
    json_out << result_json(f, weights, resolve_options(options, weights.config), prompts, r,
                            printer ? &printer->answers() : nullptr)
                    .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
             << "\n";
    close_output(json_out, f.json_path, "--json");
  }
  return 0;
}

}  // namespace

CLI::App* add_generate_command(CLI::App& app, GenerateFlags& f) {
  CLI::App* c = app.add_subcommand(
      "generate",
      "Decode prompts with a block-diffusion LM (SDAR/TraDo): prefill, blocks of mask tokens, "
      "denoising steps, commit; any attention mode. Token prompts (--tokens): stdout is the "
      "generated ids of each prompt on one line (up to and including the first eos). Text "
      "prompts (--prompt, encoded with the model folder's tokenizer): stdout is the answer, "
      "streamed as blocks commit, then a newline; with several prompts each answer is printed "
      "whole after a line '=== answer I/N ==='.");
  c->add_option("--model", f.model_dir, "Hugging Face model folder (config.json, safetensors; the tokenizer files for text prompts)");
  c->add_option("--random-weights", f.random_weights, "config.json (or its folder): random bf16 weights of that shape (a tokenizer beside it serves text prompts)");
  c->add_option("--weights-seed", f.weights_seed, "seed of --random-weights")->capture_default_str();
  // Each --tokens takes the words up to the next flag (quoted or not): repeated flags add prompts.
  c->add_option("--tokens", f.tokens, "a prompt's token ids (space or comma separated); repeat for more prompts");
  c->add_option("--tokens-file", f.tokens_file, "prompts, one per line");
  c->add_option("--prompt", f.prompts, "a prompt as text; repeat for more prompts")->allow_extra_args(false);
  c->add_option("--prompt-file", f.prompt_files, "a file holding one prompt, read whole ('-': standard input); repeat for more prompts")
      ->allow_extra_args(false);
  c->add_option("--prompts-jsonl", f.prompts_jsonl, "prompts, one a line: a JSON string or {\"prompt\": ...}");
  c->add_flag("--chat", f.chat, "render each prompt as a user turn of the model's Qwen3 chat format, with the generation prompt");
  c->add_option("--system", f.system, "with --chat: a system turn before the prompt");
  c->add_flag("--no-think", f.no_think, "with --chat: answer without thinking (an empty <think></think> block)");
  c->add_flag("--enable-thinking", f.enable_thinking, "with --chat: let the model think first (the template's default)");
  c->add_option("--stop", f.stop_strings, "with text prompts: a stop string; the answer ends before it (repeat for more)")
      ->allow_extra_args(false);
  c->add_option("--mode", f.mode, "attention mode: dense, quest, losa, sparsed")->capture_default_str();
  c->add_option("--budget", f.budget, "QUEST/LoSA token budget per row (>= page size)")->capture_default_str();
  c->add_option("--tau", f.tau, "LoSA change share (the tau rule)")->capture_default_str()->each([&f](const std::string&) {
    f.tau_given = true;
  });
  c->add_option("--k-active", f.k_active, "LoSA active tokens: the top-k rule instead of tau");
  c->add_flag("--complement", f.complement,
              "LoSA: active rows keep step 0's attention over the pages they do not load (losa_complement)");
  c->add_option("--delta-min", f.delta_min,
                "LoSA: every token whose normalised change reaches this is active (the per-row rule instead of tau)")
      ->each([&f](const std::string&) { f.delta_min_given = true; });
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
