#pragma once
// A PCRE2 regular expression over UTF-8 (UTF + UCP: \p{L}, \s and case folding follow Unicode),
// JIT-compiled. The pre-tokenizer's split and the added tokens' word and space tests use it.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace losa::runtime {

class Regex {
 public:
  /// Compiles `pattern`; on failure returns nullptr and sets *error to PCRE2's message and offset.
  static std::unique_ptr<Regex> compile(std::string_view pattern, std::string* error);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Match data and JIT stack for one thread's searches (a Regex itself is shared read-only).
  class Scratch {
   public:
    explicit Scratch(const Regex& regex);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

   private:
    friend class Regex;
    struct State;
    std::unique_ptr<State> state_;
  };

  struct Match {
    std::size_t begin;
    std::size_t end;
  };

  /// The first match starting at or after byte `start` of `subject` (valid UTF-8, `start` on a
  /// character boundary); with `anchored`, only a match starting exactly at `start`.
  std::optional<Match> find(std::string_view subject, std::size_t start, Scratch& scratch,
                            bool anchored = false) const;

 private:
  Regex() = default;
  struct Code;
  std::unique_ptr<Code> code_;
};

/// Splits `text` as Hugging Face's Split pre-tokenizer with behavior "Isolated": every match is
/// a piece, and so is every stretch between matches. Empty matches produce no piece.
void split_isolated(const Regex& regex, std::string_view text, Regex::Scratch& scratch,
                    std::vector<std::string_view>& pieces);

}  // namespace losa::runtime
