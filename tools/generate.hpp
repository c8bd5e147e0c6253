#pragma once
// `losa generate`: block-diffusion decoding of prompts, token ids or text, with a model folder or
// random weights, in any attention mode. Token prompts print ids; text prompts (encoded with the
// model folder's tokenizer, optionally as a chat turn) print the answer's text, streamed as blocks
// commit. The CLI only parses flags, reports and prints; the work is losa::runtime's
// (decoder.hpp, backend.hpp, tokenizer.hpp, chat.hpp, text_stream.hpp).
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace losa::tools {

struct GenerateFlags {
  std::string model_dir, random_weights, device = "cpu", json_path, tokens_file;
  // One prompt per --tokens: its words ("1 2 3" quoted, 1,2,3, or unquoted 1 2 3).
  std::vector<std::vector<std::string>> tokens;
  // Text prompts.
  std::vector<std::string> prompts, prompt_files, stop_strings;
  std::string prompts_jsonl, system;
  bool chat = false, no_think = false, enable_thinking = false;
  uint64_t weights_seed = 0, seed = 0;
  std::string mode = "dense", attend = "own", kv_dtype = "bf16", strategy = "low_confidence_dynamic";
  int budget = 256, k_active = -1, page_size = 16, block_size = 0, steps = 4, top_k = 0;
  int threads = 0, prefill_chunk = 1024, mask_id = -1;
  double delta_min = 0.0;  ///< with delta_min_given: LoSA's per-row threshold rule
  bool delta_min_given = false, tau_given = false;
  bool complement = false;  ///< LoSA: losa_complement
  double tau = 0.5, skip = 0.2, select = 0.3, threshold = 0.9, temperature = 0.0, top_p = 1.0;
  int64_t max_new_tokens = 128;
  std::vector<int32_t> stop_ids;
  bool ignore_eos = false, progress = false;
};

/// Registers the subcommand and its flags on `app`, bound to `flags`.
CLI::App* add_generate_command(CLI::App& app, GenerateFlags& flags);

/// Runs it: 0 on success. Throws for a bad flag (FlagError, or the library's ArgumentError) and
/// any other failure; run_reporting_errors (cli_errors.hpp) reports them naming the flag.
int run_generate(const GenerateFlags& flags);

}  // namespace losa::tools
