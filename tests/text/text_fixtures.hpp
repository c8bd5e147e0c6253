#pragma once
// The committed tokenizer fixtures (tests/text/fixtures, made by
// tools/fixtures/make_tokenizer_fixtures.py from Hugging Face's tokenizers and transformers).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "losa/runtime/tokenizer.hpp"

namespace losa::test {

using Json = nlohmann::json;
using runtime::TokenId;

inline std::string fixture_path(const std::string& name) {
  return std::string(LOSA_TEXT_FIXTURES) + "/" + name;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// reference.json, parsed once.
inline const Json& reference() {
  static const Json ref = Json::parse(read_bytes(fixture_path("reference.json")));
  return ref;
}

/// A tokenizer folder and which ids of reference.json it must reproduce: the trimmed folders
/// were renumbered ("trimmed_ids"), the full SDAR folder keeps the released ids ("ids").
struct TokenizerFolder {
  std::string label;
  std::string dir;       ///< empty: not available here (the test skips)
  std::string ids_key;   ///< "trimmed_ids" or "ids"
  std::string facts_key; ///< "trimmed" or "full": reference()["tokens"][facts_key]
};

/// The full SDAR tokenizer folder, when LOSA_SDAR_TOKENIZER_DIR names it (CI has no copy).
inline TokenizerFolder sdar_folder() {
  const char* dir = std::getenv("LOSA_SDAR_TOKENIZER_DIR");
  return {"sdar_full", dir ? dir : "", "ids", "full"};
}

inline std::vector<TokenizerFolder> all_folders() {
  return {{"trimmed_vocab_merges", fixture_path("qwen_trimmed"), "trimmed_ids", "trimmed"},
          {"trimmed_tokenizer_json", fixture_path("qwen_trimmed_json"), "trimmed_ids", "trimmed"},
          sdar_folder()};
}

inline std::vector<TokenId> ids_of(const Json& entry, const std::string& key) {
  return entry.at(key).get<std::vector<TokenId>>();
}

}  // namespace losa::test
