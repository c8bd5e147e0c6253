#include "losa/runtime/stream_decoder.hpp"

#include "losa/errors.hpp"
#include "utf8.hpp"

namespace losa::runtime {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special), mask_(tokenizer.mask_token_id()) {}

std::string StreamDecoder::push(TokenId id) {
  LOSA_CHECK_ARG(tokenizer_.contains(id), "id", "is ", id, ", which is not a token of ",
                 tokenizer_.source());
  if (id == mask_ || (skip_special_ && tokenizer_.is_special(id))) return "";
  pending_ += tokenizer_.token_bytes(id);
  return take_complete();
}

std::string StreamDecoder::push(const std::vector<TokenId>& ids) {
  for (std::size_t i = 0; i < ids.size(); ++i) {  // check first: a bad id changes nothing
    LOSA_CHECK_ARG(tokenizer_.contains(ids[i]), "ids", "holds ", ids[i], " at position ", i,
                   ", which is not a token of ", tokenizer_.source());
  }
  for (TokenId id : ids) {
    if (id == mask_ || (skip_special_ && tokenizer_.is_special(id))) continue;
    pending_ += tokenizer_.token_bytes(id);
  }
  return take_complete();
}

std::string StreamDecoder::finish() {
  std::string rest = utf8::replace_invalid(pending_);
  pending_.clear();
  return rest;
}

std::string StreamDecoder::take_complete() {
  // Everything up to the unfinished character is final: no later byte can change how the
  // lossy decoder reads it (its units end before the held-back bytes start).
  const std::size_t complete = utf8::complete_prefix_length(pending_);
  std::string text = utf8::replace_invalid(std::string_view(pending_).substr(0, complete));
  pending_.erase(0, complete);
  return text;
}

}  // namespace losa::runtime
