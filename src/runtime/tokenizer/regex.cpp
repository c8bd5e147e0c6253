#include "regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "losa/errors.hpp"
#include "utf8.hpp"

namespace losa::runtime {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// JIT stack: the Qwen pattern's alternatives are single-character repeats, which the JIT runs
// without deep backtracking frames; 4 MB leaves a wide margin for long whitespace runs.
constexpr std::size_t kJitStackStart = 32 * 1024;
constexpr std::size_t kJitStackMax = 4 * 1024 * 1024;

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

struct Regex::Scratch::State {
  pcre2_match_data* match_data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ~State() {
    pcre2_match_data_free(match_data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
  }
};

std::unique_ptr<Regex> Regex::compile(std::string_view pattern, std::string* error) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                       PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr);
  if (compiled == nullptr) {
    *error = pcre2_message(code) + " at offset " + std::to_string(offset);
    return nullptr;
  }
  std::unique_ptr<Regex> regex(new Regex());
  regex->code_ = std::make_unique<Code>();
  regex->code_->code = compiled;
  // Without JIT (an architecture PCRE2's JIT lacks) the interpreter gives the same matches.
  regex->code_->jit = pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE) == 0;
  return regex;
}

Regex::~Regex() = default;

Regex::Scratch::Scratch(const Regex& regex) : state_(std::make_unique<State>()) {
  state_->match_data = pcre2_match_data_create_from_pattern(regex.code_->code, nullptr);
  state_->context = pcre2_match_context_create(nullptr);
  if (regex.code_->jit) {
    state_->jit_stack = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);
    pcre2_jit_stack_assign(state_->context, nullptr, state_->jit_stack);
  }
  if (state_->match_data == nullptr || state_->context == nullptr) {
    throw BackendError("out of memory for the tokenizer's regex match data");
  }
}

Regex::Scratch::~Scratch() = default;

std::optional<Regex::Match> Regex::find(std::string_view subject, std::size_t start,
                                        Scratch& scratch, bool anchored) const {
  // The tokenizer validates its input as UTF-8 first, so PCRE2 need not check it again.
  const int rc =
      pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), start,
                  PCRE2_NO_UTF_CHECK | (anchored ? PCRE2_ANCHORED : 0u), scratch.state_->match_data,
                  scratch.state_->context);
  if (rc == PCRE2_ERROR_NOMATCH) return std::nullopt;
  if (rc < 0) throw BackendError("tokenizer regex match failed: " + pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.state_->match_data);
  return Match{ovector[0], ovector[1]};
}

void split_isolated(const Regex& regex, std::string_view text, Regex::Scratch& scratch,
                    std::vector<std::string_view>& pieces) {
  std::size_t gap_begin = 0;  // start of the text not yet covered by a piece
  std::size_t search = 0;
  while (search < text.size()) {
    const auto match = regex.find(text, search, scratch);
    if (!match) break;
    if (match->end == match->begin) {  // skip an empty match by one character
      if (match->begin >= text.size()) break;
      search = match->begin + utf8::next_unit(text, match->begin).length;
      continue;
    }
    if (match->begin > gap_begin)
      pieces.push_back(text.substr(gap_begin, match->begin - gap_begin));
    pieces.push_back(text.substr(match->begin, match->end - match->begin));
    gap_begin = search = match->end;
  }
  if (gap_begin < text.size()) pieces.push_back(text.substr(gap_begin));
}

}  // namespace losa::runtime
