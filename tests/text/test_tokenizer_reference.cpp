// The tokenizer against Hugging Face on the committed corpus: encode ids, decodes (valid and
// invalid UTF-8, with and without special tokens), split_special_tokens, special-token lookups.
// Runs on both trimmed fixture folders (vocab.json + merges.txt, tokenizer.json) and, when
// LOSA_SDAR_TOKENIZER_DIR points at the released SDAR files, on the full vocabulary.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "losa/runtime/tokenizer.hpp"
#include "text_fixtures.hpp"

namespace losa::test {
namespace {

using runtime::EncodeOptions;
using runtime::Tokenizer;

class TokenizerReference : public ::testing::TestWithParam<TokenizerFolder> {
 protected:
  void SetUp() override {
    if (GetParam().dir.empty()) {
      GTEST_SKIP() << "LOSA_SDAR_TOKENIZER_DIR is not set: the full-vocabulary check is skipped "
                      "(set it to a folder with the SDAR vocab.json + merges.txt)";
    }
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(GetParam().dir));
  }
  const std::string& ids_key() const { return GetParam().ids_key; }
  const Json& facts() const { return reference()["tokens"][GetParam().facts_key]; }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(TokenizerReference, EncodeEqualsReference) {
  for (const Json& entry : reference()["encode"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    EXPECT_EQ(tokenizer_->encode(entry["text"].get<std::string>()), ids_of(entry, ids_key()));
  }
}

TEST_P(TokenizerReference, TokenSpellingsAsTransformers) {
  for (const Json& entry : reference()["encode"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    const auto ids = ids_of(entry, ids_key());
    const auto tokens = entry["tokens"].get<std::vector<std::string>>();
    ASSERT_EQ(ids.size(), tokens.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(tokenizer_->token_text(ids[i]), tokens[i]);
      EXPECT_EQ(tokenizer_->find_token_id(tokens[i]), ids[i]);
    }
  }
}

TEST_P(TokenizerReference, DecodeEqualsReference) {
  for (const Json& entry : reference()["encode"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    const auto ids = ids_of(entry, ids_key());
    EXPECT_EQ(tokenizer_->decode(ids), entry["decoded"].get<std::string>());
    EXPECT_EQ(tokenizer_->decode(ids, /*skip_special=*/true),
              entry["decoded_skip_special"].get<std::string>());
  }
}

TEST_P(TokenizerReference, RoundTripGivesTextBackWhenItIsNfc) {
  int checked = 0;
  for (const Json& entry : reference()["encode"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    const std::string text = entry["text"].get<std::string>();
    const std::string back = tokenizer_->decode(tokenizer_->encode(text));
    if (entry["nfc_stable"].get<bool>()) {
      EXPECT_EQ(back, text);
      ++checked;
    } else {
      EXPECT_NE(back, text) << "NFC should have changed this text";
    }
  }
  EXPECT_GT(checked, 20);
}

TEST_P(TokenizerReference, SplitSpecialTokensEqualsReference) {
  EncodeOptions options;
  options.split_special_tokens = true;
  for (const Json& entry : reference()["encode_split_special"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    EXPECT_EQ(tokenizer_->encode(entry["text"].get<std::string>(), options),
              ids_of(entry, ids_key()));
  }
}

TEST_P(TokenizerReference, InvalidUtf8DecodesAsReference) {
  for (const Json& entry : reference()["decode"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    const auto ids = ids_of(entry, ids_key());
    EXPECT_EQ(tokenizer_->decode(ids), entry["text"].get<std::string>());
    EXPECT_EQ(tokenizer_->decode(ids, true), entry["text_skip_special"].get<std::string>());
  }
}

TEST_P(TokenizerReference, ChatPromptsEncodeAsReference) {
  for (const Json& entry : reference()["chat"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    EXPECT_EQ(tokenizer_->encode(entry["prompt"].get<std::string>()), ids_of(entry, ids_key()));
  }
}

TEST_P(TokenizerReference, SpecialTokenLookupsAsTransformers) {
  EXPECT_EQ(tokenizer_->mask_token_id(), facts()["mask_token_id"].get<TokenId>());
  EXPECT_EQ(tokenizer_->eos_token_id(), facts()["eos_token_id"].get<TokenId>());
  EXPECT_EQ(tokenizer_->token_id("<|im_end|>"), facts()["im_end_id"].get<TokenId>());
  EXPECT_EQ(tokenizer_->vocab_size(), facts()["vocab_size"].get<TokenId>());
  const auto special = facts()["all_special_ids"].get<std::vector<TokenId>>();
  std::vector<TokenId> added;
  for (const auto& token : tokenizer_->added_tokens()) {
    added.push_back(token.id);
    const bool expected = std::count(special.begin(), special.end(), token.id) > 0;
    EXPECT_EQ(tokenizer_->is_special(token.id), expected) << token.content;
    EXPECT_EQ(token.special, expected) << token.content;
  }
  EXPECT_EQ(added, facts()["added_ids"].get<std::vector<TokenId>>());
}

/// Encodes every reference text whose ids the `keep` test accepts, with the folder `dir`.
void expect_reference_encodes(const std::string& dir,
                              const std::function<bool(const Json&)>& keep) {
  const Tokenizer tokenizer = Tokenizer::load(dir);
  int checked = 0;
  for (const Json& entry : reference()["encode"]) {
    if (!keep(entry)) continue;
    SCOPED_TRACE(entry["name"].get<std::string>());
    EXPECT_EQ(tokenizer.encode(entry["text"].get<std::string>()), ids_of(entry, "trimmed_ids"));
    ++checked;
  }
  EXPECT_GT(checked, 15);
}

TEST(TokenizerFormats, TokenizerJsonWithMergesAsStrings) {
  // Files written by tokenizers < 0.20 hold each merge as "left right", not [left, right].
  ScratchFolder folder("qwen_trimmed_json");
  Json doc = Json::parse(folder.read("tokenizer.json"));
  Json merges = Json::array();
  for (const Json& pair : doc["model"]["merges"]) {
    merges.push_back(pair[0].get<std::string>() + " " + pair[1].get<std::string>());
  }
  doc["model"]["merges"] = merges;
  folder.write("tokenizer.json", doc.dump());
  expect_reference_encodes(folder.dir(), [](const Json&) { return true; });
}

TEST(TokenizerFormats, AddedTokensJsonWithoutAddedTokensDecoder) {
  // The older layout: added_tokens.json gives the ids, the special-token names the flags. Its
  // SDAR copy names the mask token "<MASK>", so texts with "<|MASK|>" tokenize differently.
  ScratchFolder folder("qwen_trimmed");
  Json config = Json::parse(folder.read("tokenizer_config.json"));
  config.erase("added_tokens_decoder");
  folder.write("tokenizer_config.json", config.dump());
  expect_reference_encodes(folder.dir(), [](const Json& entry) {
    return entry["text"].get<std::string>().find("MASK") == std::string::npos;
  });
  EXPECT_EQ(Tokenizer::load(folder.dir()).find_token_id("<|MASK|>"), std::nullopt);
}

TEST(TokenizerFormats, AddedTokenFlagsAsTokenizers) {
  // lstrip, rstrip, single_word and normalized, which the Qwen files leave off, set on a copy of
  // the tokenizer.json (alone: no tokenizer_config.json), against the `tokenizers` library.
  const Tokenizer tokenizer = Tokenizer::load(fixture_path("qwen_trimmed_flags"));
  ASSERT_GE(reference()["added_token_flags"].size(), 5u);
  for (const Json& entry : reference()["added_token_flags"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    EXPECT_EQ(tokenizer.encode(entry["text"].get<std::string>()), ids_of(entry, "ids"));
    EXPECT_EQ(tokenizer.decode(ids_of(entry, "ids")), entry["decoded"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Folders, TokenizerReference, ::testing::ValuesIn(all_folders()),
                         [](const auto& info) { return info.param.label; });

}  // namespace
}  // namespace losa::test
