// Bad input gives clear errors: a folder without tokenizer files, malformed or inconsistent files
// (the error names the file and the line or entry), ids outside the vocabulary, text that is not
// UTF-8, unknown token names.
#include <gtest/gtest.h>

#include "losa/errors.hpp"
#include "losa/runtime/tokenizer.hpp"
#include "text_fixtures.hpp"

namespace losa::test {
namespace {

using runtime::Tokenizer;

TEST(TokenizerErrors, MissingFolder) {
  expect_error<ArgumentError>([] { Tokenizer::load("/nonexistent/losa/model"); },
                              {"model_dir", "is not a folder", "/nonexistent/losa/model"});
}

TEST(TokenizerErrors, FolderWithoutTokenizerFiles) {
  ScratchFolder folder;
  folder.write("config.json", "{}");
  expect_error<ArgumentError>([&] { Tokenizer::load(folder.dir()); },
                              {"model_dir", "has no tokenizer files", folder.dir()});
}

TEST(TokenizerErrors, VocabWithoutMerges) {
  ScratchFolder folder("qwen_trimmed");
  std::filesystem::remove(folder.file("merges.txt"));
  expect_error<ArgumentError>([&] { Tokenizer::load(folder.dir()); }, {"no merges.txt"});
}

TEST(TokenizerErrors, TruncatedTokenizerJson) {
  ScratchFolder folder("qwen_trimmed_json");
  const std::string text = folder.read("tokenizer.json");
  folder.write("tokenizer.json", text.substr(0, text.size() / 2));
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("tokenizer.json"), "is not valid JSON"});
}

TEST(TokenizerErrors, TokenizerJsonOfAnotherModelType) {
  ScratchFolder folder("qwen_trimmed_json");
  folder.replace("tokenizer.json", "\"type\": \"BPE\"", "\"type\": \"WordPiece\"");
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("tokenizer.json"), "'model.type'", "WordPiece"});
}

TEST(TokenizerErrors, TokenizerJsonWithoutMerges) {
  ScratchFolder folder("qwen_trimmed_json");
  folder.replace("tokenizer.json", "\"merges\":", "\"merges_renamed\":");
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); }, {"'model' lacks 'merges'"});
}

TEST(TokenizerErrors, VocabJsonNotAnObject) {
  ScratchFolder folder("qwen_trimmed");
  folder.write("vocab.json", "[1, 2, 3]");
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("vocab.json"), "must be a non-empty JSON object"});
}

TEST(TokenizerErrors, VocabJsonWithATextId) {
  ScratchFolder folder("qwen_trimmed");
  folder.replace("vocab.json", "\"!\": 0", "\"!\": \"zero\"");
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("vocab.json"), "token '!'", "\"zero\""});
}

TEST(TokenizerErrors, VocabLackingAByteToken) {
  ScratchFolder folder("qwen_trimmed");
  folder.replace("vocab.json", "\"!\": 0, ", "");
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("vocab.json"), "byte 0x21"});
}

TEST(TokenizerErrors, MalformedMergesLine) {
  ScratchFolder folder("qwen_trimmed");
  std::string merges = folder.read("merges.txt");
  const std::size_t third_line =
      merges.find('\n', merges.find('\n', merges.find('\n') + 1) + 1) + 1;
  merges.insert(third_line, "onlyonetoken\n");
  folder.write("merges.txt", merges);
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("merges.txt"), "line 4", "onlyonetoken"});
}

TEST(TokenizerErrors, MergeOutsideTheVocabulary) {
  ScratchFolder folder("qwen_trimmed");
  folder.write("merges.txt", folder.read("merges.txt") + "zzqq xxyy\n");
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("merges.txt"), "zzqq", "not in the vocabulary"});
}

TEST(TokenizerErrors, TwoAddedTokensWithOneId) {
  ScratchFolder folder("qwen_trimmed_json");
  folder.replace("tokenizer.json", "\"content\": \"<|im_end|>\"", "\"content\": \"<|im_start|>\"");
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("tokenizer.json"), "'<|im_start|>' has two ids"});
}

TEST(TokenizerErrors, AddedTokenWithABadFlag) {
  ScratchFolder folder("qwen_trimmed");
  folder.replace("tokenizer_config.json", "\"special\": true", "\"special\": \"yes\"");
  expect_error<FileError>([&] { Tokenizer::load(folder.dir()); },
                          {folder.file("tokenizer_config.json"), "special' must be true or false"});
}

TEST(TokenizerErrors, DecodeOfIdsOutsideTheVocabulary) {
  const Tokenizer tokenizer = Tokenizer::load(fixture_path("qwen_trimmed"));
  for (TokenId bad : {-1, tokenizer.vocab_size(), tokenizer.vocab_size() + 1000}) {
    SCOPED_TRACE(bad);
    expect_error<ArgumentError>(
        [&] {
          tokenizer.decode({0, 1, bad});
        },
        {"'ids'", std::to_string(bad) + " at position 2"});
    EXPECT_FALSE(tokenizer.contains(bad));
    EXPECT_THROW(tokenizer.token_bytes(bad), ArgumentError);
  }
}

TEST(TokenizerErrors, EncodeOfInvalidUtf8NamesTheByte) {
  const Tokenizer tokenizer = Tokenizer::load(fixture_path("qwen_trimmed"));
  expect_error<ArgumentError>([&] { tokenizer.encode("ok \xC3\x28 no"); },
                              {"'text'", "byte 3 (0xC3)"});
  expect_error<ArgumentError>([&] { tokenizer.encode("\xED\xA0\x80"); }, {"byte 0 (0xED)"});
}

TEST(TokenizerErrors, UnknownTokenName) {
  const Tokenizer tokenizer = Tokenizer::load(fixture_path("qwen_trimmed"));
  EXPECT_FALSE(tokenizer.find_token_id("<|not_a_token|>").has_value());
  expect_error<ArgumentError>([&] { tokenizer.token_id("<|not_a_token|>"); },
                              {"'token'", "<|not_a_token|>"});
}

}  // namespace
}  // namespace losa::test
