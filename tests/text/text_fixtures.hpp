#pragma once
// The committed tokenizer fixtures (tests/text/fixtures, made by
// tools/fixtures/make_tokenizer_fixtures.py from Hugging Face's tokenizers and transformers).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
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
  std::string dir;        ///< empty: not available here (the test skips)
  std::string ids_key;    ///< "trimmed_ids" or "ids"
  std::string facts_key;  ///< "trimmed" or "full": reference()["tokens"][facts_key]
};

/// Test names show the folder's label, not its bytes.
inline void PrintTo(const TokenizerFolder& folder, std::ostream* out) { *out << folder.label; }

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

/// Runs `run` expecting an Error whose message contains every one of `parts`.
template <typename Error>
void expect_error(const std::function<void()>& run, const std::vector<std::string>& parts) {
  try {
    run();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const std::string& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "'" << part << "' missing from: " << e.what();
    }
  }
}

/// A scratch copy of a fixture folder (or an empty folder), removed at the end of the test.
class ScratchFolder {
 public:
  explicit ScratchFolder(const std::string& fixture = "") {
    namespace fs = std::filesystem;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("losa_tok_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
    if (!fixture.empty()) {
      for (const auto& file : fs::directory_iterator(fixture_path(fixture))) {
        fs::copy_file(file.path(), path_ / file.path().filename());
      }
    }
  }
  ~ScratchFolder() { std::filesystem::remove_all(path_); }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;

  std::string dir() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }
  std::string read(const std::string& name) const { return read_bytes(file(name)); }
  /// Replaces the first `from` in file `name` by `to` (a failed expectation if absent).
  void replace(const std::string& name, const std::string& from, const std::string& to) const {
    std::string text = read(name);
    const std::size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from << " not in " << name;
    if (at != std::string::npos) write(name, text.replace(at, from.size(), to));
  }

 private:
  std::filesystem::path path_;
};

}  // namespace losa::test
