#include "tokenize.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli_errors.hpp"
#include "losa/errors.hpp"
#include "losa/runtime/tokenizer.hpp"

namespace losa::tools {
namespace {

using runtime::TokenId;
using runtime::Tokenizer;

std::string read_input(const std::string& file) {
  if (file == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) bad_flag("--file", "cannot be read: '" + file + "'");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

/// "1 2, 3" "4" -> {1, 2, 3, 4}.
std::vector<TokenId> parse_ids(const std::vector<std::string>& args) {
  std::vector<TokenId> ids;
  for (const std::string& arg : args) {
    std::string spaced = arg;
    for (char& c : spaced) c = (c == ',') ? ' ' : c;
    std::istringstream words(spaced);
    std::string word;
    while (words >> word) {
      std::size_t used = 0;
      long long value = -1;
      try {
        value = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size() || value < 0 || value > INT32_MAX) {
        bad_flag("--decode", "has '" + word + "', which is not a token id");
      }
      ids.push_back(static_cast<TokenId>(value));
    }
  }
  return ids;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "tokenize",
      "Encode text into token ids, or decode ids into text, with a model folder's "
      "tokenizer (tokenizer.json, or vocab.json + merges.txt: Qwen2/Qwen3 byte-level "
      "BPE). Without --ids, prints one token a line: its id and its spelling in the "
      "vocabulary (Ġ stands for a space, Ċ for a newline).");
  cmd->add_option("--model", options.model_dir, "model folder with the tokenizer files")
      ->required();
  auto* text = cmd->add_option("--text", options.text, "text to encode");
  auto* file = cmd->add_option("--file", options.file, "file to encode ('-': standard input)");
  auto* decode =
      cmd->add_option("--decode", options.decode, "ids to decode, separated by spaces or commas");
  text->excludes(file)->excludes(decode);
  file->excludes(decode);
  cmd->add_flag("--ids", options.ids_only, "print only the ids, on one line, space-separated");
  cmd->add_flag("--skip-special", options.skip_special, "with --decode: leave special tokens out");
  cmd->add_flag("--split-special", options.split_special,
                "encode the text of special tokens (<|im_end|>, ...) as ordinary text");
  cmd->add_flag("--time", options.time, "print load and encode/decode times to standard error");
  return cmd;
}

int run_tokenize(const CLI::App& command, const TokenizeOptions& options) {
  const bool encoding = command.count("--text") > 0 || command.count("--file") > 0;
  if (!encoding && command.count("--decode") == 0) {
    bad_flag("--text", "is missing: give --text, --file or --decode");
  }
  const auto load_start = std::chrono::steady_clock::now();
  Tokenizer tokenizer = [&] {
    try {
      return Tokenizer::load(options.model_dir);
    } catch (const ArgumentError& e) {
      bad_flag("--model", reason_of(e));
    }
  }();
  const double load_ms = milliseconds_since(load_start);

  if (!encoding) {
    const std::vector<TokenId> ids = parse_ids(options.decode);
    const auto start = std::chrono::steady_clock::now();
    std::string text;
    try {
      text = tokenizer.decode(ids, options.skip_special);
    } catch (const ArgumentError& e) {
      bad_flag("--decode", reason_of(e));
    }
    if (options.time) {
      std::fprintf(stderr, "loaded %s in %.1f ms; decoded %zu ids into %zu bytes in %.3f ms\n",
                   tokenizer.source().c_str(), load_ms, ids.size(), text.size(),
                   milliseconds_since(start));
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }

  const std::string input = command.count("--text") ? options.text : read_input(options.file);
  runtime::EncodeOptions encode_options;
  encode_options.split_special_tokens = options.split_special;
  const auto start = std::chrono::steady_clock::now();
  std::vector<TokenId> ids;
  try {
    ids = tokenizer.encode(input, encode_options);
  } catch (const ArgumentError& e) {
    bad_flag(command.count("--text") ? "--text" : "--file", reason_of(e));
  }
  const double encode_ms = milliseconds_since(start);
  if (options.time) {
    std::fprintf(stderr,
                 "loaded %s in %.1f ms; encoded %zu bytes into %zu tokens in %.1f ms "
                 "(%.1f MB/s)\n",
                 tokenizer.source().c_str(), load_ms, input.size(), ids.size(), encode_ms,
                 input.size() / 1e3 / std::max(encode_ms, 1e-3));
  }
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (options.ids_only) {
      out += (i ? " " : "") + std::to_string(ids[i]);
    } else {
      out += std::to_string(ids[i]) + "\t" + tokenizer.token_text(ids[i]) + "\n";
    }
  }
  if (options.ids_only) out += "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace losa::tools
