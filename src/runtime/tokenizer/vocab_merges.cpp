// vocab.json + merges.txt: the BPE vocabulary and merges of a folder without tokenizer.json.
#include <limits>

#include "losa/errors.hpp"
#include "tokenizer_spec.hpp"
#include "utf8.hpp"

namespace losa::runtime {

void read_vocab_object(const Json& vocab, const std::string& path, const std::string& where,
                       TokenizerSpec& spec) {
  if (!vocab.is_object() || vocab.empty()) {
    throw FileError(path, "'" + where + "' must be a non-empty JSON object {token: id}");
  }
  spec.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 ||
        id.get<long long>() > std::numeric_limits<TokenId>::max()) {
      throw FileError(path, "token '" + token + "' in '" + where +
                                "' must have a non-negative integer id, got " + id.dump());
    }
    spec.vocab.emplace_back(token, static_cast<TokenId>(id.get<long long>()));
  }
  spec.vocab_path = path;
}

bool parse_merge_text(const std::string& text, TokenizerSpec::MergeLine& merge) {
  const std::size_t space = text.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 == text.size() ||
      text.find(' ', space + 1) != std::string::npos) {
    return false;
  }
  merge.left = text.substr(0, space);
  merge.right = text.substr(space + 1);
  return true;
}

void read_vocab_and_merges(const std::string& vocab_path, const std::string& merges_path,
                           TokenizerSpec& spec) {
  read_vocab_object(read_json_file(vocab_path), vocab_path, "vocab.json", spec);
  const std::string text = read_file(merges_path);
  if (utf8::first_invalid(text) != std::string::npos) {
    throw FileError(merges_path, "is not valid UTF-8 (at byte " +
                                     std::to_string(utf8::first_invalid(text)) + ")");
  }
  std::size_t line_begin = 0;
  for (std::size_t line_number = 1; line_begin < text.size(); ++line_number) {
    std::size_t line_end = text.find('\n', line_begin);
    if (line_end == std::string::npos) line_end = text.size();
    std::string line = text.substr(line_begin, line_end - line_begin);
    line_begin = line_end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;  // as Hugging Face skips it
    TokenizerSpec::MergeLine merge;
    merge.where = "line " + std::to_string(line_number);
    if (!parse_merge_text(line, merge)) {
      throw FileError(
          merges_path,
          merge.where + ": expected two tokens separated by one space, got '" + line + "'");
    }
    spec.merges.push_back(std::move(merge));
  }
  spec.merges_path = merges_path;
  spec.source = vocab_path + ", " + merges_path;
  // The Qwen2 pipeline, as transformers' Qwen2Converter builds it from these files.
  spec.split_pattern = kQwen2SplitPattern;
  spec.normalization = Normalization::kNFC;
}

}  // namespace losa::runtime
