#pragma once
// What a model folder's tokenizer files say, in one form whichever files said it (tokenizer.json,
// or vocab.json + merges.txt + tokenizer_config.json / added_tokens.json). Reading checks the
// files' syntax; building the tokenizer (tokenizer_build.cpp) checks their consistency.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "json_file.hpp"
#include "losa/runtime/tokenizer.hpp"
#include "normalizer.hpp"

namespace losa::runtime {

/// The pre-tokenizer regex of Qwen2/Qwen3, as transformers' Qwen2Converter writes it into
/// tokenizer.json (and as the Qwen2/Qwen3 tokenizer.json files hold it). \p{N} without "+":
/// digits are split one at a time.
inline constexpr const char* kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|)"
    R"(\s*[\r\n]+|\s+(?!\S)|\s+)";

/// The names tokenizer_config.json (else special_tokens_map.json) gives special tokens.
struct SpecialTokenNames {
  std::vector<std::string> all;  ///< every name in eos_token, mask_token, additional_..., ...
  std::optional<std::string> eos;
  std::optional<std::string> mask;
};

struct TokenizerSpec {
  std::string source;                                  ///< the files read, for messages
  std::string vocab_path;                              ///< where the BPE vocabulary came from
  std::string merges_path;                             ///< where the merges came from
  std::string added_path;                              ///< where the added tokens came from
  std::vector<std::pair<std::string, TokenId>> vocab;  ///< BPE token (byte-level text) -> id
  struct MergeLine {
    std::string left;
    std::string right;
    std::string where;  ///< "line 7" or "model.merges[5]"
  };
  std::vector<MergeLine> merges;  ///< in rank order
  std::vector<AddedToken> added;
  std::string split_pattern = kQwen2SplitPattern;
  Normalization normalization = Normalization::kNFC;
  SpecialTokenNames names;
};

/// Reads the tokenizer files of `model_dir` (see Tokenizer::load for which, and the errors).
TokenizerSpec read_tokenizer_spec(const std::string& model_dir);

/// tokenizer.json: model (BPE), normalizer, pre_tokenizer, decoder, added_tokens.
void read_tokenizer_json(const std::string& path, TokenizerSpec& spec);
/// vocab.json and merges.txt, with the Qwen2 normalizer and pre-tokenizer.
void read_vocab_and_merges(const std::string& vocab_path, const std::string& merges_path,
                           TokenizerSpec& spec);
/// The added tokens of tokenizer_config.json's added_tokens_decoder, else of added_tokens.json.
void read_config_added_tokens(const std::string& model_dir, TokenizerSpec& spec);
/// The special-token names of tokenizer_config.json, else of special_tokens_map.json.
SpecialTokenNames read_special_token_names(const std::string& model_dir);

/// The BPE vocabulary from a JSON object {token: id} (vocab.json, tokenizer.json's model.vocab).
void read_vocab_object(const Json& vocab, const std::string& path, const std::string& where,
                       TokenizerSpec& spec);
/// One merge written as "left right" (merges.txt, older tokenizer.json files); false when the
/// text is not two non-empty tokens separated by one space.
bool parse_merge_text(const std::string& text, TokenizerSpec::MergeLine& merge);

/// One added token from a JSON entry ({content, special, normalized, lstrip, rstrip,
/// single_word}); missing flags take Hugging Face's defaults (normalized = !special).
AddedToken parse_added_token(const Json& entry, TokenId id, const std::string& path,
                             const std::string& where);

}  // namespace losa::runtime
