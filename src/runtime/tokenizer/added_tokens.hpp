#pragma once
// Finding added tokens in text, as Hugging Face's AddedVocabulary::find_matches does: the
// leftmost match wins, the longest among those starting there; a match that its flags reject
// (single_word) is skipped whole; lstrip/rstrip widen a match over adjacent whitespace.
#include <array>
#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "losa/runtime/tokenizer.hpp"
#include "regex.hpp"

namespace losa::runtime {

class AddedTokenMatcher {
 public:
  /// Matches those of `tokens` whose `normalized` flag equals `normalized` (Hugging Face matches
  /// the others in the raw text, these in the normalized text). `patterns[i]` is the text to find
  /// for tokens[i]: its content, NFC-normalized for a normalized token.
  AddedTokenMatcher(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns,
                    bool normalized);

  /// A stretch of the text: an added token (id >= 0) or text between them (id == -1).
  struct Segment {
    std::size_t begin;
    std::size_t end;
    TokenId id;
  };

  /// Splits `text` (valid UTF-8) into segments covering it in order. With `skip_special`, special
  /// tokens are not split out (their text stays ordinary text).
  void split(std::string_view text, bool skip_special, std::vector<Segment>& out) const;

  bool empty() const { return candidates_.empty(); }

 private:
  struct Candidate {
    std::string pattern;
    const AddedToken* token;
  };
  /// The longest candidate matching at `pos`, or nullptr.
  const Candidate* longest_at(std::string_view text, std::size_t pos) const;

  std::vector<Candidate> candidates_;   ///< longest first
  std::array<bool, 256> starts_{};      ///< first bytes of the patterns: a cheap filter
  std::unique_ptr<Regex> word_char_;    ///< Rust regex's Unicode \w, for single_word
  std::unique_ptr<Regex> white_space_;  ///< Unicode White_Space (Rust's \s), for lstrip/rstrip
};

}  // namespace losa::runtime
