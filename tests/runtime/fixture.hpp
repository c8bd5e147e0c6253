#pragma once
// Paths and readers for the committed fixtures (tests/fixtures/), made by
// tools/fixtures/make_tiny_sdar.py.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace losa::test {

/// The committed fixtures; LOSA_FIXTURE_DIR in the environment overrides the build's path (a
/// test binary run from another checkout, e.g. on the lent GPU machine).
inline std::string fixture_dir() {
  const char* env = std::getenv("LOSA_FIXTURE_DIR");
  return env && *env ? env : LOSA_FIXTURE_DIR;
}
inline std::string tiny_dir() { return fixture_dir() + "/tiny-sdar"; }
inline std::string tiny_model(const std::string& variant) { return tiny_dir() + "/" + variant; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

inline const nlohmann::json& tiny_reference() {
  static const nlohmann::json ref = nlohmann::json::parse(read_file(tiny_dir() + "/reference.json"));
  return ref;
}

/// Reference logits of a variant's forward: [tokens, vocab] fp32.
inline std::vector<float> reference_logits(const std::string& variant) {
  const std::string bytes =
      read_file(tiny_dir() + "/" + tiny_reference()["forward"][variant]["logits_file"].get<std::string>());
  std::vector<float> x(bytes.size() / 4);
  std::memcpy(x.data(), bytes.data(), x.size() * 4);
  return x;
}

/// A fresh scratch folder holding a copy of a fixture model (removed by the caller's TempDir).
struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/losa-test-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string copy_of(const std::string& folder) const {
    const std::string dst = path + "/model";
    std::system(("rm -rf '" + dst + "' && cp -r '" + folder + "' '" + dst + "'").c_str());
    return dst;
  }
};

}  // namespace losa::test
