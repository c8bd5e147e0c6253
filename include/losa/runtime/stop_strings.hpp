#pragma once
// Stop strings over streamed text: `losa generate --stop TEXT` ends the answer where TEXT first
// appears, even when TEXT arrives split over several blocks, and never shows any part of it.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace losa::runtime {

/// Watches a text stream for any of several stop strings. push() returns the text that can be
/// shown now: it holds back a tail that could be the start of a stop string until the next
/// pushes confirm or refute it. The result does not depend on how the stream is cut into pushes:
/// the stop is the one that completes first in the stream (the longest of those ending at the
/// same byte), and the text shown ends right before it.
class StopStringMatcher {
 public:
  /// `stop_strings`: each non-empty (ArgumentError('stop_strings') names an empty one). An empty
  /// list never stops and holds nothing back.
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  struct Result {
    std::string text;      ///< text to show now (valid UTF-8 when the input is)
    bool stopped = false;  ///< a stop string completed: `text` ends before it; stop generating
    std::string stop;      ///< the stop string found, when stopped
  };

  /// Appends streamed text. Once stopped, further pushes return nothing and stay stopped.
  Result push(std::string_view text);

  /// End of stream without a stop: the held-back tail (a partial stop string that never
  /// completed). Empty once stopped.
  std::string finish();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace losa::runtime
