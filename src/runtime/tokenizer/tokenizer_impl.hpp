#pragma once
// The tables behind losa::runtime::Tokenizer, built once from a TokenizerSpec and then shared
// read-only by every copy of the tokenizer and every thread.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "added_tokens.hpp"
#include "bpe.hpp"
#include "losa/runtime/tokenizer.hpp"
#include "normalizer.hpp"
#include "regex.hpp"
#include "tokenizer_spec.hpp"

namespace losa::runtime {

struct Tokenizer::Impl {
  std::string source;
  enum Kind : std::uint8_t { kAbsent = 0, kPresent = 1, kSpecial = 2 };
  std::vector<std::uint8_t> kind_by_id;  ///< [vocab_size] kPresent | kSpecial bits
  std::vector<std::string> bytes_by_id;  ///< [vocab_size] the bytes each token stands for
  std::vector<std::string> text_by_id;   ///< [vocab_size] the files' spelling of each token
  std::unordered_map<std::string, TokenId> id_by_text;  ///< vocabulary spelling -> id
  std::vector<AddedToken> added;                        ///< by id; the matchers point into it
  std::unique_ptr<BpeModel> bpe;
  std::unique_ptr<Regex> split_regex;
  std::unique_ptr<AddedTokenMatcher> raw_matcher;         ///< tokens with normalized = false
  std::unique_ptr<AddedTokenMatcher> normalized_matcher;  ///< tokens with normalized = true
  Normalization normalization = Normalization::kNFC;
  std::optional<TokenId> eos;
  std::optional<TokenId> mask;

  bool contains(TokenId id) const {
    return id >= 0 && static_cast<std::size_t>(id) < kind_by_id.size() && kind_by_id[id] != kAbsent;
  }
  bool is_special(TokenId id) const { return contains(id) && (kind_by_id[id] & kSpecial); }

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options) const;
  std::string decode(const std::vector<TokenId>& ids, bool skip_special) const;

 private:
  void encode_normalized(std::string_view text, const EncodeOptions& options,
                         Regex::Scratch& scratch, BpeEncoder& bpe_encoder,
                         std::vector<TokenId>& ids) const;
};

/// Checks `spec` for consistency (unique ids, the 256 byte tokens, merges within the vocabulary,
/// a pattern that compiles) and builds the tables. FileError names the file and entry at fault.
std::shared_ptr<const Tokenizer::Impl> build_tokenizer(const TokenizerSpec& spec);

}  // namespace losa::runtime
