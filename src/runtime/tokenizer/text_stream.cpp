#include "losa/runtime/text_stream.hpp"

namespace losa::runtime {

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings,
                       bool skip_special)
    : decoder_(tokenizer, skip_special), stops_(std::move(stop_strings)) {}

TextStream::Result TextStream::push(const std::vector<TokenId>& ids) {
  if (stops_.stopped()) return stops_.push("");
  return stops_.push(decoder_.push(ids));
}

TextStream::Result TextStream::finish() {
  if (stops_.stopped()) return stops_.push("");
  Result result = stops_.push(decoder_.finish());
  if (!result.stopped) result.text += stops_.finish();
  return result;
}

}  // namespace losa::runtime
