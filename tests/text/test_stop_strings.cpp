// StopStringMatcher against a naive oracle (the first prefix of the stream that ends with a stop
// string), for every way of cutting the stream into pushes.
#include <gtest/gtest.h>

#include <random>

#include "losa/errors.hpp"
#include "losa/runtime/stop_strings.hpp"
#include "losa/runtime/text_stream.hpp"
#include "text_fixtures.hpp"

namespace losa::test {
namespace {

using runtime::StopStringMatcher;
using runtime::TextStream;
using runtime::Tokenizer;

struct Expected {
  bool stopped = false;
  std::string text;  ///< what should be shown in all
  std::string stop;
};

/// The oracle: grow the stream byte by byte; the first length at which some stop string is a
/// suffix decides (the longest such stop), and the text shown ends before it.
Expected naive_stop(const std::string& stream, const std::vector<std::string>& stops) {
  for (std::size_t length = 1; length <= stream.size(); ++length) {
    const std::string prefix = stream.substr(0, length);
    const std::string* found = nullptr;
    for (const std::string& stop : stops) {
      const bool suffix = stop.size() <= prefix.size() &&
                          prefix.compare(prefix.size() - stop.size(), stop.size(), stop) == 0;
      if (suffix && (found == nullptr || stop.size() > found->size())) found = &stop;
    }
    if (found) return {true, prefix.substr(0, prefix.size() - found->size()), *found};
  }
  return {false, stream, ""};
}

/// Pushes `stream` in random pieces; checks that what is shown is always a prefix of the
/// oracle's text, and that it all adds up to it.
void check_cutting(const std::string& stream, const std::vector<std::string>& stops,
                   std::mt19937& rng) {
  const Expected expected = naive_stop(stream, stops);
  StopStringMatcher matcher(stops);
  std::string shown;
  std::size_t pos = 0;
  StopStringMatcher::Result last;
  while (pos < stream.size() && !matcher.stopped()) {
    const std::size_t piece = std::uniform_int_distribution<std::size_t>(1, 12)(rng);
    last = matcher.push(std::string_view(stream).substr(pos, piece));
    pos += piece;
    shown += last.text;
    ASSERT_EQ(expected.text.compare(0, shown.size(), shown), 0) << "shown too much: " << shown;
  }
  shown += matcher.finish();
  EXPECT_EQ(matcher.stopped(), expected.stopped);
  EXPECT_EQ(shown, expected.text);
  if (expected.stopped) EXPECT_EQ(last.stop, expected.stop);
}

TEST(StopStrings, MatchTheOracleForEveryCutting) {
  std::mt19937 rng(3);
  for (const Json& entry : reference()["encode"]) {
    const std::string text = entry["text"].get<std::string>();
    if (text.size() < 8) continue;
    SCOPED_TRACE(entry["name"].get<std::string>());
    // Stop strings taken from the text itself, plus ones that are absent or overlap.
    const std::size_t a = rng() % (text.size() - 4), b = rng() % (text.size() - 6);
    const std::vector<std::vector<std::string>> stop_sets = {
        {text.substr(a, 3)},
        {text.substr(b, 5), text.substr(a, 2), "<|im_end|>"},
        {"\n\n", "never in any text \x01"},
        {text.substr(text.size() - 4) + "tail"},  // a partial match held back, then released
    };
    for (const auto& stops : stop_sets) {
      for (int trial = 0; trial < 4; ++trial) check_cutting(text, stops, rng);
    }
  }
}

TEST(StopStrings, OverlappingStopsTheFirstToCompleteWins) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    check_cutting("xxabcdyy", {"abcd", "bc"}, rng);
    check_cutting("xxabcdyy", {"bcd", "abcd"}, rng);
    check_cutting("aaab", {"aab", "aaab"}, rng);
    check_cutting("<|im_e<|im_end|>", {"<|im_end|>"}, rng);
  }
}

TEST(StopStrings, NoStopsShowsEverythingAtOnce) {
  StopStringMatcher matcher({});
  EXPECT_EQ(matcher.push("abc").text, "abc");
  EXPECT_EQ(matcher.finish(), "");
}

TEST(StopStrings, AfterAStopNothingMoreShows) {
  StopStringMatcher matcher({"END"});
  const auto first = matcher.push("done END more");
  EXPECT_TRUE(first.stopped);
  const auto second = matcher.push("and more");
  EXPECT_TRUE(second.stopped);
  EXPECT_EQ(second.text, "");
  EXPECT_EQ(matcher.finish(), "");
}

TEST(StopStrings, AnEmptyStopStringIsRejectedByPosition) {
  expect_error<ArgumentError>(
      [] {
        StopStringMatcher matcher({"ok", ""});
      },
      {"argument 'stop_strings'", "position 1"});
}

TEST(TextStream, GenerationTextEndsBeforeTheFirstStopForAnyBlocks) {
  const Tokenizer tokenizer = Tokenizer::load(fixture_path("qwen_trimmed"));
  const TokenId mask = *tokenizer.mask_token_id();
  std::mt19937 rng(9);
  int stopped = 0;
  for (const char* section : {"encode", "chat"}) {
    for (const Json& entry : reference()[section]) {
      SCOPED_TRACE(entry["name"].get<std::string>());
      const auto ids = ids_of(entry, "trimmed_ids");
      const std::string text = tokenizer.decode(ids, /*skip_special=*/true);
      if (text.size() < 8) continue;
      const std::vector<std::string> stops = {text.substr(rng() % (text.size() - 4), 4), "\n\n"};
      const Expected expected = naive_stop(text, stops);
      TextStream stream(tokenizer, stops);
      std::string shown;
      TextStream::Result last;
      for (std::size_t pos = 0; pos < ids.size() && !stream.stopped();) {
        std::vector<TokenId> block;  // a committed block, mask tokens left in on purpose
        for (std::size_t n = 1 + rng() % 6; n > 0 && pos < ids.size(); --n) {
          if (rng() % 4 == 0) block.push_back(mask);
          block.push_back(ids[pos++]);
        }
        last = stream.push(block);
        shown += last.text;
        ASSERT_EQ(expected.text.compare(0, shown.size(), shown), 0) << "shown too much: " << shown;
      }
      if (!stream.stopped()) {
        last = stream.finish();
        shown += last.text;
      }
      EXPECT_EQ(shown, expected.text);
      EXPECT_EQ(last.stopped, expected.stopped);
      stopped += expected.stopped;
    }
  }
  EXPECT_GT(stopped, 10);
}

}  // namespace
}  // namespace losa::test
