// Random corruptions and truncations of a valid checkpoint: the loader never crashes (run under
// -fsanitize=address,undefined to check reads too) and either throws CheckpointError or loads
// exactly the values its file holds where its header says.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

#include "losa/errors.hpp"
#include "losa/runtime/weights.hpp"
#include "runtime/fixture.hpp"
#include "runtime/safetensors_image.hpp"

namespace losa::runtime {
namespace {

// After a successful load, every view must point at the bytes the (possibly corrupted) file's
// own header names, with its shape; an independent parse of that header is the judge.
void expect_views_match_file(const Weights& w, const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  auto check = [&](const TensorView& v) {
    ASSERT_TRUE(header.contains(v.name)) << v.name;
    const auto& e = header[v.name];
    EXPECT_EQ(v.shape, e["shape"].get<std::vector<int64_t>>()) << v.name;
    const uint64_t begin = e["data_offsets"][0], end = e["data_offsets"][1];
    ASSERT_EQ(static_cast<uint64_t>(v.bytes()), end - begin) << v.name;
    EXPECT_EQ(std::memcmp(v.data, bytes.data() + 8 + n + begin, end - begin), 0) << v.name;
  };
  check(w.embed_tokens);
  check(w.norm);
  for (const LayerWeights& l : w.layers)
    for (const TensorView* v : {&l.input_layernorm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj,
                                &l.q_norm, &l.k_norm, &l.post_attention_layernorm, &l.gate_proj,
                                &l.up_proj, &l.down_proj})
      check(*v);
}

TEST(RuntimeLoaderFuzz, CorruptionsNeverCrashNorLoadGarbage) {
  test::TempDir tmp;
  const std::string dir = tmp.copy_of(test::tiny_model("f16-tied"));
  const std::string path = dir + "/model.safetensors";
  const std::string original = test::read_file(path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(original[i]);
  std::mt19937_64 rng(20261126);
  int loaded = 0, rejected = 0;
  // LOSA_FUZZ_CASES runs a longer campaign (e.g. 5000 under the sanitizers); CI runs 300.
  const char* env = std::getenv("LOSA_FUZZ_CASES");
  const int cases = env ? std::max(4, std::atoi(env)) : 300;
  for (int c = 0; c < cases; ++c) {
    std::string bytes = original;
    auto pick = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi - 1)(rng); };
    switch (c % 4) {
      case 0: bytes.resize(pick(0, original.size())); break;  // truncation
      case 1:                                                 // bytes of the header
        for (int k = 0, n = 1 + c % 4; k < n; ++k) bytes[pick(8, 8 + header_len)] = static_cast<char>(pick(0, 256));
        break;
      case 2:  // bytes anywhere, header length included
        for (int k = 0, n = 1 + c % 5; k < n; ++k) bytes[pick(0, bytes.size())] = static_cast<char>(pick(0, 256));
        break;
      case 3:  // the header length
        bytes[pick(0, 8)] = static_cast<char>(pick(0, 256));
        break;
    }
    test::write_file(path, bytes);
    try {
      const Weights w = load_checkpoint(dir);
      expect_views_match_file(w, bytes);
      ++loaded;
    } catch (const CheckpointError&) {
      ++rejected;
    }
  }
  // Both outcomes happen: data-only corruptions load (the format has no checksum), header
  // corruptions and truncations are rejected.
  EXPECT_GT(loaded, 10);
  EXPECT_GT(rejected, cases / 2);
  std::printf("fuzz: %d loaded, %d rejected\n", loaded, rejected);
}

}  // namespace
}  // namespace losa::runtime
