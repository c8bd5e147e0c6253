// Random input never crashes the tokenizer: random bytes into encode (ids or ArgumentError), random
// ids into decode and the stream decoder (text or ArgumentError), random Unicode text and long
// runs of one character round-trip to their NFC form.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <random>

#include "losa/errors.hpp"
#include "losa/runtime/stream_decoder.hpp"
#include "losa/runtime/tokenizer.hpp"
#include "text_fixtures.hpp"

namespace losa::test {
namespace {

using runtime::StreamDecoder;
using runtime::Tokenizer;

const Tokenizer& trimmed() {
  static const Tokenizer tokenizer = Tokenizer::load(fixture_path("qwen_trimmed"));
  return tokenizer;
}

/// NFC by utf8proc, for the expected round trip of text that is not NFC already.
std::string nfc(const std::string& text) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &out,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  EXPECT_GE(n, 0);
  std::string result(reinterpret_cast<const char*>(out), n < 0 ? 0 : static_cast<std::size_t>(n));
  std::free(out);
  return result;
}

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buffer[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buffer);
  out.append(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(n));
}

/// Random text and what decode(encode(text)) must give: NFC of the text between added tokens
/// (added tokens are split out before normalization, as in Hugging Face: "<think>" followed by
/// U+0338 keeps its ">", where NFC of the whole text would make ">" + U+0338 into U+226F).
struct RandomText {
  std::string text;
  std::string round_trip;
};

/// Text from the kinds of characters the pre-tokenizer and NFC treat differently.
RandomText random_text(std::mt19937& rng) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E},        // ASCII
      {0x09, 0x0D},        // tab, newlines, vertical tab, form feed, carriage return
      {0xA0, 0x17F},       // Latin-1, Latin Extended-A (NBSP, long s)
      {0x300, 0x36F},      // combining marks: NFC composes them
      {0x900, 0x97F},      // Devanagari
      {0x1100, 0x11FF},    // Hangul jamo: NFC composes syllables
      {0x2000, 0x202F},    // spaces, zero-width joiner, line and paragraph separators
      {0x4E00, 0x4E80},    // CJK
      {0x1F300, 0x1F64F},  // emoji
      {0x85, 0x85},        // NEL
  };
  static const std::vector<std::string> fragments = {"<|im_end|>", "<|im_", "<think>", "'S", "'ll",
                                                     "<|MASK|>",   "  ",    "\r\n",    "123"};
  RandomText result;
  std::string run;  // text since the last added token
  const int length = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int i = 0; i < length; ++i) {
    if (rng() % 8 == 0) {
      const std::string& fragment = fragments[rng() % fragments.size()];
      result.text += fragment;
      const auto& added = trimmed().added_tokens();
      if (std::any_of(added.begin(), added.end(),
                      [&](const auto& t) { return t.content == fragment; })) {
        result.round_trip += nfc(run) + fragment;
        run.clear();
      } else {
        run += fragment;
      }
      continue;
    }
    const auto& [lo, hi] = ranges[rng() % ranges.size()];
    std::string character;
    append_utf8(character, std::uniform_int_distribution<char32_t>(lo, hi)(rng));
    result.text += character;
    run += character;
  }
  result.round_trip += nfc(run);
  return result;
}

TEST(TokenizerFuzz, RandomBytesIntoEncode) {
  std::mt19937 rng(1);
  int encoded = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes(std::uniform_int_distribution<int>(0, 48)(rng), '\0');
    for (char& c : bytes) c = static_cast<char>(rng() % 4 ? rng() % 128 : rng() % 256);
    try {
      const auto ids = trimmed().encode(bytes);
      EXPECT_EQ(trimmed().decode(ids), nfc(bytes));
      ++encoded;
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.argument(), "text");
      ++rejected;
    }
  }
  EXPECT_GT(encoded, 100);
  EXPECT_GT(rejected, 100);
}

TEST(TokenizerFuzz, RandomUnicodeRoundTripsToNfc) {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 3000; ++trial) {
    const RandomText random = random_text(rng);
    EXPECT_EQ(trimmed().decode(trimmed().encode(random.text)), random.round_trip) << random.text;
  }
}

TEST(TokenizerFuzz, RandomIdsIntoDecodeAndStream) {
  std::mt19937 rng(3);
  const TokenId size = trimmed().vocab_size();
  int decoded = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<TokenId> ids(std::uniform_int_distribution<int>(0, 24)(rng));
    for (TokenId& id : ids) id = std::uniform_int_distribution<TokenId>(-2, size + 1)(rng);
    const bool skip = rng() % 2;
    try {
      const std::string text = trimmed().decode(ids, skip);
      StreamDecoder stream(trimmed(), skip);
      std::string joined;
      for (TokenId id : ids) {
        if (id != trimmed().mask_token_id()) joined += stream.push(id);
      }
      joined += stream.finish();
      std::vector<TokenId> visible;
      for (TokenId id : ids) {
        if (id != trimmed().mask_token_id()) visible.push_back(id);
      }
      EXPECT_EQ(joined, trimmed().decode(visible, skip));
      ++decoded;
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.argument(), "ids");
    }
  }
  EXPECT_GT(decoded, 100);
}

TEST(TokenizerFuzz, LongRunsOfOneCharacter) {
  // One pre-tokenizer match (or one BPE word) of a quarter megabyte: regex backtracking, the JIT
  // stack and the merge heap at their largest.
  for (const std::string unit : {" ", "\n", "\r\n", "7", "a", "=", "\xF0\x9F\x98\x80", " \t"}) {
    std::string text;
    while (text.size() < 256 * 1024) text += unit;
    SCOPED_TRACE(unit);
    EXPECT_EQ(trimmed().decode(trimmed().encode(text)), text);
  }
}

}  // namespace
}  // namespace losa::test
