#pragma once
// `losa tokenize`: text to ids and ids to text with a model folder's tokenizer.
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace losa::tools {

struct TokenizeOptions {
  std::string model_dir;
  std::string text;
  std::string file;                 ///< "-" reads standard input
  std::vector<std::string> decode;  ///< ids, separated by spaces or commas, over one or more args
  bool ids_only = false;
  bool skip_special = false;
  bool split_special = false;
  bool time = false;
};

/// Registers the `tokenize` subcommand on `app`, filling `options`.
CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& options);

/// Runs it; `command` tells which options were given. Returns the exit status. Bad flags throw
/// FlagError naming the flag (cli_errors.hpp); bad tokenizer files throw FileError naming the file.
int run_tokenize(const CLI::App& command, const TokenizeOptions& options);

}  // namespace losa::tools
