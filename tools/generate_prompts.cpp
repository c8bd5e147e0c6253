#include "generate_prompts.hpp"

#include <climits>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_errors.hpp"
#include "losa/runtime/chat.hpp"

namespace losa::tools {
namespace {

using runtime::TokenId;
using runtime::Tokenizer;

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

std::string read_whole(const std::string& path, const std::string& flag) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_flag(flag, "cannot read '" + path + "'");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) bad_flag(flag, "cannot read '" + path + "'");
  return bytes.str();
}

std::vector<TextPrompt> read_jsonl(const std::string& path) {
  const std::string flag = "--prompts-jsonl";
  std::istringstream lines(read_whole(path, flag));
  std::vector<TextPrompt> prompts;
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = flag + " '" + path + "' line " + std::to_string(number);
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      bad_flag(where, std::string("is not JSON: ") + e.what());
    }
    if (value.is_object() && value.contains("prompt")) value = value["prompt"];
    if (!value.is_string())
      bad_flag(where, "must be a JSON string or an object with a string \"prompt\"");
    prompts.push_back({value.get<std::string>(), where});
  }
  if (prompts.empty()) bad_flag(flag, "'" + path + "' holds no prompt (one JSON value a line)");
  return prompts;
}

/// Encodes, naming the prompt's source (or --system) when the text is not UTF-8.
std::vector<TokenId> encode_prompt(const TextPrompt& prompt, const GenerateFlags& f,
                                   const Tokenizer& tokenizer) {
  if (!f.chat) {
    try {
      return tokenizer.encode(prompt.text);
    } catch (const ArgumentError& e) {
      bad_flag(prompt.source, reason_of(e));
    }
  }
  std::vector<runtime::ChatMessage> messages;
  if (!f.system.empty()) messages.push_back({"system", f.system, std::nullopt});
  messages.push_back({"user", prompt.text, std::nullopt});
  const std::string rendered = runtime::render_chat(messages, true, !f.no_think);
  try {
    return tokenizer.encode(rendered);
  } catch (const ArgumentError&) {
    // Only on this error path: encode the parts alone, so that the message names the culprit
    // and its byte offsets are the user's, not the rendered prompt's.
    for (const auto& [text, source] :
         {std::pair(prompt.text, prompt.source), std::pair(f.system, std::string("--system"))}) {
      try {
        tokenizer.encode(text);
      } catch (const ArgumentError& e) {
        bad_flag(source, reason_of(e));
      }
    }
    throw;
  }
}

}  // namespace

bool has_token_prompts(const GenerateFlags& f) {
  return !f.tokens.empty() || !f.tokens_file.empty();
}

bool has_text_prompts(const GenerateFlags& f) {
  return !f.prompts.empty() || !f.prompt_files.empty() || !f.prompts_jsonl.empty();
}

std::vector<std::vector<int32_t>> read_token_prompts(const GenerateFlags& f) {
  if (f.tokens.empty() == f.tokens_file.empty())
    bad_flag("--tokens", "or --tokens-file: give exactly one of them");
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& words : f.tokens) {
    std::string joined;
    for (const auto& w : words) joined += w + " ";
    prompts.push_back(parse_ids(joined, "--tokens"));
  }
  if (!f.tokens_file.empty()) {
    std::istringstream lines(read_whole(f.tokens_file, "--tokens-file"));
    std::string line;
    while (std::getline(lines, line))
      if (line.find_first_not_of(" \t\r") != std::string::npos)
        prompts.push_back(parse_ids(line, "--tokens-file"));
    if (prompts.empty()) bad_flag("--tokens-file", "holds no prompt (one per line)");
  }
  return prompts;
}

std::vector<TextPrompt> read_text_prompts(const GenerateFlags& f) {
  const int kinds = !f.prompts.empty() + !f.prompt_files.empty() + !f.prompts_jsonl.empty();
  if (kinds != 1)
    bad_flag("--prompt",
             "or --prompt-file or --prompts-jsonl: give one kind (--prompt and "
             "--prompt-file may repeat, one prompt each)");
  std::vector<TextPrompt> prompts;
  for (const std::string& text : f.prompts) prompts.push_back({text, "--prompt"});
  int stdin_uses = 0;
  for (const std::string& path : f.prompt_files) {
    stdin_uses += path == "-";
    if (stdin_uses > 1) bad_flag("--prompt-file", "names '-' (standard input) more than once");
    prompts.push_back({read_whole(path, "--prompt-file"), "--prompt-file '" + path + "'"});
  }
  if (!f.prompts_jsonl.empty()) prompts = read_jsonl(f.prompts_jsonl);
  return prompts;
}

std::vector<std::vector<int32_t>> encode_text_prompts(const std::vector<TextPrompt>& prompts,
                                                      const GenerateFlags& f,
                                                      const Tokenizer& tokenizer) {
  std::vector<std::vector<int32_t>> ids;
  for (const TextPrompt& prompt : prompts) {
    ids.push_back(encode_prompt(prompt, f, tokenizer));
    if (ids.back().empty()) bad_flag(prompt.source, "is empty: there is nothing to continue");
  }
  return ids;
}

}  // namespace losa::tools
