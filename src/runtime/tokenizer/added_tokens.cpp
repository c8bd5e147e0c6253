#include "added_tokens.hpp"

#include <algorithm>

#include "losa/errors.hpp"
#include "utf8.hpp"

namespace losa::runtime {
namespace {

std::unique_ptr<Regex> compile_class(std::string_view pattern) {
  std::string error;
  auto regex = Regex::compile(pattern, &error);
  if (!regex) throw BackendError("PCRE2 lacks a Unicode property the tokenizer needs: " + error);
  return regex;
}

/// Start of the character that ends at `end` (> 0).
std::size_t previous_char(std::string_view text, std::size_t end) {
  std::size_t pos = end - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  return pos;
}

bool char_matches(const Regex& regex, std::string_view text, std::size_t pos,
                  std::unique_ptr<Regex::Scratch>& scratch) {
  if (!scratch) scratch = std::make_unique<Regex::Scratch>(regex);
  return regex.find(text, pos, *scratch, /*anchored=*/true).has_value();
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens,
                                     const std::vector<std::string>& patterns, bool normalized) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].normalized != normalized || patterns[i].empty()) continue;
    candidates_.push_back(Candidate{patterns[i], &tokens[i]});
    starts_[static_cast<unsigned char>(patterns[i][0])] = true;
  }
  std::stable_sort(
      candidates_.begin(), candidates_.end(),
      [](const Candidate& a, const Candidate& b) { return a.pattern.size() > b.pattern.size(); });
  // Rust regex's \w is Unicode's word class (UTS #18 annex C); its \s is White_Space.
  word_char_ = compile_class(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])");
  white_space_ = compile_class(R"(\p{White_Space})");
}

const AddedTokenMatcher::Candidate* AddedTokenMatcher::longest_at(std::string_view text,
                                                                  std::size_t pos) const {
  for (const Candidate& c : candidates_) {
    if (text.compare(pos, c.pattern.size(), c.pattern) == 0) return &c;
  }
  return nullptr;
}

void AddedTokenMatcher::split(std::string_view text, bool skip_special,
                              std::vector<Segment>& out) const {
  std::unique_ptr<Regex::Scratch> word_scratch, space_scratch;  // made on first use (rare flags)
  std::size_t covered = 0;                                      // end of the last segment pushed
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!starts_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const Candidate* match = longest_at(text, pos);
    if (match == nullptr) {
      ++pos;
      continue;
    }
    const AddedToken& token = *match->token;
    std::size_t begin = pos;
    std::size_t end = pos + match->pattern.size();
    pos = end;  // the search goes on after this match, even when the match is dropped
    if (skip_special && token.special) continue;
    if (token.single_word) {
      const bool word_before =
          begin > 0 && char_matches(*word_char_, text, previous_char(text, begin), word_scratch);
      const bool word_after =
          end < text.size() && char_matches(*word_char_, text, end, word_scratch);
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      std::size_t start = begin;
      while (start > covered &&
             char_matches(*white_space_, text, previous_char(text, start), space_scratch)) {
        start = previous_char(text, start);
      }
      begin = start;
    }
    if (token.rstrip) {
      while (end < text.size() && char_matches(*white_space_, text, end, space_scratch)) {
        end += utf8::next_unit(text, end).length;
      }
      pos = std::max(pos, end);  // (Hugging Face may let a later match overlap the strip)
    }
    if (begin > covered) out.push_back(Segment{covered, begin, -1});
    out.push_back(Segment{begin, end, token.id});
    covered = end;
  }
  if (covered < text.size()) out.push_back(Segment{covered, text.size(), -1});
}

}  // namespace losa::runtime
