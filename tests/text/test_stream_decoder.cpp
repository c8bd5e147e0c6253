// StreamDecoder: the pieces joined equal decode() for any cutting of the ids, no piece ends
// inside a character, the mask token never shows, and a bad id changes nothing.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <functional>
#include <random>

#include "losa/errors.hpp"
#include "losa/runtime/stream_decoder.hpp"
#include "text_fixtures.hpp"

namespace losa::test {
namespace {

using runtime::StreamDecoder;
using runtime::Tokenizer;

/// Well-formed UTF-8, checked by utf8proc (not by the tokenizer's own scanner).
bool well_formed(const std::string& s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) return false;
    p += n;
    left -= n;
  }
  return true;
}

const Tokenizer& trimmed() {
  static const Tokenizer tokenizer = Tokenizer::load(fixture_path("qwen_trimmed"));
  return tokenizer;
}

/// Every id sequence of the reference: corpus encodes, invalid-byte and mixed decodes, chats.
std::vector<std::vector<TokenId>> reference_id_sequences() {
  std::vector<std::vector<TokenId>> all;
  for (const char* section : {"encode", "decode", "chat"}) {
    for (const Json& entry : reference()[section]) all.push_back(ids_of(entry, "trimmed_ids"));
  }
  return all;
}

std::vector<TokenId> without_mask(std::vector<TokenId> ids, TokenId mask) {
  ids.erase(std::remove(ids.begin(), ids.end(), mask), ids.end());
  return ids;
}

/// Streams `ids` in blocks of next_block() ids; checks every piece is well-formed UTF-8 and
/// returns the pieces joined, finish() included.
std::string streamed(const std::vector<TokenId>& ids, bool skip_special,
                     const std::function<std::size_t()>& next_block) {
  StreamDecoder stream(trimmed(), skip_special);
  std::string joined;
  for (std::size_t pos = 0; pos < ids.size();) {
    const std::size_t end = std::min(ids.size(), pos + next_block());
    const std::string piece =
        stream.push(std::vector<TokenId>(ids.begin() + pos, ids.begin() + end));
    EXPECT_TRUE(well_formed(piece));
    joined += piece;
    pos = end;
  }
  return joined + stream.finish();
}

TEST(StreamDecoder, OneByOneEqualsDecodeAndNeverSplitsACharacter) {
  const TokenId mask = *trimmed().mask_token_id();
  for (bool skip_special : {false, true}) {
    for (const auto& ids : reference_id_sequences()) {
      EXPECT_EQ(streamed(ids, skip_special, [] { return 1; }),
                trimmed().decode(without_mask(ids, mask), skip_special));
    }
  }
}

TEST(StreamDecoder, RandomBlocksEqualDecode) {
  std::mt19937 rng(7);
  const auto random_block = [&] { return std::uniform_int_distribution<std::size_t>(1, 8)(rng); };
  const TokenId mask = *trimmed().mask_token_id();
  for (const auto& ids : reference_id_sequences()) {
    for (int trial = 0; trial < 5; ++trial) {
      EXPECT_EQ(streamed(ids, true, random_block), trimmed().decode(without_mask(ids, mask), true));
    }
  }
}

TEST(StreamDecoder, HoldsACharacterSplitOverByteTokensUntilItIsWhole) {
  int checked = 0;
  for (const Json& entry : reference()["decode"]) {
    const auto ids = ids_of(entry, "trimmed_ids");
    const std::string whole = trimmed().decode(ids);
    const bool only_bytes = entry["pieces"].size() == 1 && entry["pieces"][0].contains("bytes");
    if (!only_bytes || whole.find("\xEF\xBF\xBD") != std::string::npos || ids.size() < 2) continue;
    // A valid character in several byte tokens: nothing shows before its last byte.
    SCOPED_TRACE(entry["name"].get<std::string>());
    StreamDecoder stream(trimmed(), false);
    std::string joined;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) joined += stream.push(ids[i]);
    EXPECT_TRUE(joined.empty() || well_formed(joined));
    EXPECT_GT(stream.pending_bytes(), 0u);
    joined += stream.push(ids.back());
    EXPECT_EQ(stream.pending_bytes(), 0u);
    EXPECT_EQ(joined, whole);
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

TEST(StreamDecoder, MaskTokensNeverShow) {
  const TokenId mask = *trimmed().mask_token_id();
  std::mt19937 rng(11);
  for (const auto& original : reference_id_sequences()) {
    std::vector<TokenId> ids;
    for (TokenId id : original) {
      if (rng() % 3 == 0) ids.push_back(mask);
      ids.push_back(id);
    }
    for (bool skip_special : {false, true}) {
      StreamDecoder stream(trimmed(), skip_special);
      std::string joined = stream.push(ids);
      joined += stream.finish();
      EXPECT_EQ(joined, trimmed().decode(without_mask(original, mask), skip_special));
    }
  }
}

TEST(StreamDecoder, ABadIdThrowsAndChangesNothing) {
  const auto ids = ids_of(reference()["decode"][0], "trimmed_ids");  // a lone lead byte
  StreamDecoder stream(trimmed(), false);
  EXPECT_EQ(stream.push(ids), "");
  const std::size_t pending = stream.pending_bytes();
  EXPECT_THROW(stream.push(trimmed().vocab_size()), ArgumentError);
  EXPECT_THROW(stream.push(std::vector<TokenId>{ids[0], -1}), ArgumentError);
  EXPECT_EQ(stream.pending_bytes(), pending);
  EXPECT_EQ(stream.finish(), trimmed().decode(ids));
  expect_error<ArgumentError>(
      [&] {
        stream.push(std::vector<TokenId>{0, 1, -7});
      },
      {"argument 'ids'", "-7 at position 2"});
}

}  // namespace
}  // namespace losa::test
