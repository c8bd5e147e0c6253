#pragma once
// Streaming detokenization for `losa generate`: token ids go in as blocks commit, text comes out
// as soon as it is whole. Never half a UTF-8 character (a token may end inside one: Qwen's byte
// tokens split CJK and emoji), never a mask token.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "losa/runtime/tokenizer.hpp"

namespace losa::runtime {

/// Decodes a growing sequence of ids piece by piece. The pieces joined (every push, then
/// finish) equal tokenizer.decode(ids without mask tokens, skip_special), for any way of cutting
/// the ids into pushes: the decoder holds back only the bytes of an unfinished character.
class StreamDecoder {
 public:
  /// `skip_special`: leave special tokens (<|im_end|>, <|endoftext|>, ...) out of the text, as
  /// decode(ids, true) does. The mask token is always left out.
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true);

  /// Appends one token; returns the text it completes (often empty, or several characters).
  /// Throws ArgumentError('id') for an id that is not a token; the decoder is then unchanged.
  std::string push(TokenId id);
  /// Appends tokens in order (a committed block); returns the text they complete.
  /// Throws ArgumentError('ids') naming the position of an id that is not a token; the decoder
  /// is then unchanged.
  std::string push(const std::vector<TokenId>& ids);

  /// Ends the stream: a character left unfinished comes out as U+FFFD, as decode() shows it.
  /// The decoder is then empty and may start a new stream.
  std::string finish();

  /// Bytes held back because they start a character the tokens have not finished (0 to 3).
  std::size_t pending_bytes() const { return pending_.size(); }

 private:
  std::string take_complete();

  Tokenizer tokenizer_;  // a copy shares the tables
  bool skip_special_;
  std::optional<TokenId> mask_;
  std::string pending_;
};

}  // namespace losa::runtime
