#pragma once
// What `losa generate` shows while it runs: committed token ids in, text out, ending at the first
// stop string. StreamDecoder (whole characters, no mask tokens) feeding StopStringMatcher.
#include <string>
#include <vector>

#include "losa/runtime/stop_strings.hpp"
#include "losa/runtime/stream_decoder.hpp"
#include "losa/runtime/tokenizer.hpp"

namespace losa::runtime {

/// The text of a generation as its blocks commit. Everything shown, joined, is the decode of the
/// pushed ids (without mask tokens; without special tokens when `skip_special`) cut right before
/// the first stop string, however the ids are cut into pushes.
class TextStream {
 public:
  /// `stop_strings` as StopStringMatcher takes them (none: never stops on text).
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings,
             bool skip_special = true);

  using Result = StopStringMatcher::Result;

  /// A committed block of ids. `text` is what to print now; `stopped` says a stop string
  /// appeared: stop generating (later pushes show nothing). Throws ArgumentError('ids') for an
  /// id that is not a token, changing nothing.
  Result push(const std::vector<TokenId>& ids);

  /// Generation ended without a stop string (EOS, a stop id, the length limit): the rest to print,
  /// an unfinished character (as U+FFFD) and a held-back partial stop string included. It can
  /// still complete a stop string, then `stopped` is set and the text ends before it.
  Result finish();

  bool stopped() const { return stops_.stopped(); }

 private:
  StreamDecoder decoder_;
  StopStringMatcher stops_;
};

}  // namespace losa::runtime
