// A bad model folder gets a CheckpointError naming the file and the tensor at fault.
#include <gtest/gtest.h>

#include <functional>

#include "losa/errors.hpp"
#include "losa/runtime/weights.hpp"
#include "runtime/fixture.hpp"
#include "runtime/safetensors_image.hpp"

namespace losa::runtime {
namespace {

using test::SafetensorsImage;

const char* kShard1 = "model-00001-of-00002.safetensors";
const char* kShard2 = "model-00002-of-00002.safetensors";
const char* kIndex = "model.safetensors.index.json";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A copy of the sharded fixture, edited by `corrupt`, must fail to load with an error naming
// `file` (its last path component) and `tensor` (empty: none; "*": some tensor) and saying
// `reason`.
void expect_checkpoint_error(const std::function<void(const std::string& dir)>& corrupt,
                             const std::string& file, const std::string& tensor,
                             const std::string& reason) {
  test::TempDir tmp;
  const std::string dir = tmp.copy_of(test::tiny_model("bf16-sharded"));
  corrupt(dir);
  try {
    load_checkpoint(dir);
    ADD_FAILURE() << "loaded a checkpoint that should fail: " << reason;
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(ends_with(e.file(), file)) << what;
    if (tensor == "*")
      EXPECT_FALSE(e.tensor().empty()) << what;
    else
      EXPECT_EQ(e.tensor(), tensor) << what;
    EXPECT_NE(what.find(file), std::string::npos) << what;
    if (!e.tensor().empty()) EXPECT_NE(what.find("'" + e.tensor() + "'"), std::string::npos) << what;
    EXPECT_NE(what.find(reason), std::string::npos) << what;
  }
}

// The shard holding `tensor`.
std::string shard_of(const std::string& dir, const std::string& tensor) {
  const auto index = nlohmann::json::parse(test::read_file(dir + "/" + kIndex));
  return dir + "/" + index["weight_map"][tensor].get<std::string>();
}

void edit_shard(const std::string& dir, const std::string& tensor,
                const std::function<void(SafetensorsImage&)>& edit) {
  const std::string path = shard_of(dir, tensor);
  SafetensorsImage img = SafetensorsImage::read(path);
  edit(img);
  img.write(path);
}

void edit_index(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  auto index = nlohmann::json::parse(test::read_file(dir + "/" + kIndex));
  edit(index);
  test::write_file(dir + "/" + kIndex, index.dump());
}

const std::string kQ = "model.layers.0.self_attn.q_proj.weight";

TEST(RuntimeLoaderErrors, ValidFixtureLoads) {
  const Weights w = load_checkpoint(test::tiny_model("bf16-sharded"));
  EXPECT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.layers[0].q_proj.shape, (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(w.config.eos_token_ids, (std::vector<int32_t>{1, 2}));  // config's 1 + generation's [2, 1]
  EXPECT_EQ(w.config.mask_token_id, 511);
  EXPECT_EQ(w.config.block_size, 4);
}

std::string shard_name_of(const std::string& tensor) {
  const std::string path = shard_of(test::tiny_model("bf16-sharded"), tensor);
  return path.substr(path.rfind('/') + 1);
}

TEST(RuntimeLoaderErrors, TensorMissingFromItsShard) {
  expect_checkpoint_error(
      [](const std::string& dir) {
        edit_shard(dir, kQ, [](SafetensorsImage& img) { img.header.erase(kQ); });
      },
      shard_name_of(kQ), kQ, "missing");
}

TEST(RuntimeLoaderErrors, TensorMissingEverywhere) {
  expect_checkpoint_error(
      [](const std::string& dir) {
        edit_shard(dir, kQ, [](SafetensorsImage& img) { img.header.erase(kQ); });
        edit_index(dir, [](nlohmann::json& index) { index["weight_map"].erase(kQ); });
      },
      kIndex, kQ, "missing tensor");
}

TEST(RuntimeLoaderErrors, UnexpectedTensor) {
  const std::string extra = "model.layers.7.self_attn.extra.weight";
  expect_checkpoint_error(
      [&](const std::string& dir) {
        edit_shard(dir, kQ, [&](SafetensorsImage& img) {
          const auto end = img.data.size();
          img.header[extra] = {{"dtype", "BF16"}, {"shape", {0}}, {"data_offsets", {end, end}}};
        });
        edit_index(dir, [&](nlohmann::json& index) {
          index["weight_map"][extra] = index["weight_map"][kQ];
        });
      },
      shard_name_of(kQ), extra, "unexpected tensor");
}

TEST(RuntimeLoaderErrors, TensorInShardButNotInIndex) {
  const std::string extra = "model.extra.weight";
  expect_checkpoint_error(
      [&](const std::string& dir) {
        edit_shard(dir, kQ, [&](SafetensorsImage& img) {
          const auto end = img.data.size();
          img.header[extra] = {{"dtype", "BF16"}, {"shape", {0}}, {"data_offsets", {end, end}}};
        });
      },
      shard_name_of(kQ), extra, "not listed in the index");
}

TEST(RuntimeLoaderErrors, WrongShape) {
  expect_checkpoint_error(
      [](const std::string& dir) {
        edit_shard(dir, kQ, [](SafetensorsImage& img) { img.header[kQ]["shape"] = {128, 256}; });
      },
      shard_name_of(kQ), kQ, "shape [128, 256] but the config needs [256, 128]");
}

TEST(RuntimeLoaderErrors, WrongDtype) {
  const std::string name = shard_name_of(kQ);
  expect_checkpoint_error(
      [](const std::string& dir) {
        edit_shard(dir, kQ, [](SafetensorsImage& img) { img.header[kQ]["dtype"] = "I64"; });
      },
      name, kQ, "dtype I64 is not supported");
  expect_checkpoint_error(  // an allowed dtype whose size does not match the data
      [](const std::string& dir) {
        edit_shard(dir, kQ, [](SafetensorsImage& img) { img.header[kQ]["dtype"] = "F32"; });
      },
      name, kQ, "needs");
}

TEST(RuntimeLoaderErrors, TruncatedShard) {
  expect_checkpoint_error(
      [](const std::string& dir) {
        const std::string path = dir + "/" + kShard2;
        const std::string bytes = test::read_file(path);
        test::write_file(path, bytes.substr(0, bytes.size() - 1000));
      },
      kShard2, "*", "run past the end");  // which tensor: checked below
  test::TempDir tmp;
  const std::string dir = tmp.copy_of(test::tiny_model("bf16-sharded"));
  const std::string path = dir + "/" + kShard2;
  SafetensorsImage img = SafetensorsImage::read(path);
  std::string last;
  uint64_t last_end = 0;
  for (auto it = img.header.begin(); it != img.header.end(); ++it)
    if (it.key() != "__metadata__" && it.value()["data_offsets"][1].get<uint64_t>() > last_end) {
      last_end = it.value()["data_offsets"][1];
      last = it.key();
    }
  const std::string bytes = test::read_file(path);
  test::write_file(path, bytes.substr(0, bytes.size() - 1000));
  try {
    load_checkpoint(dir);
    ADD_FAILURE() << "a truncated shard loaded";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.tensor(), last) << e.what();
    EXPECT_NE(std::string(e.what()).find("run past the end"), std::string::npos) << e.what();
  }
}

TEST(RuntimeLoaderErrors, HeaderLengthPastEndOfFile) {
  expect_checkpoint_error(
      [](const std::string& dir) {
        const std::string path = dir + "/" + kShard1;
        std::string bytes = test::read_file(path);
        bytes[5] = 1;  // header length += 2^40
        test::write_file(path, bytes);
      },
      kShard1, "", "runs past the end of the file");
  expect_checkpoint_error(
      [](const std::string& dir) { test::write_file(dir + "/" + kShard1, "abc"); }, kShard1, "",
      "truncated");
}

TEST(RuntimeLoaderErrors, MalformedJsonHeader) {
  expect_checkpoint_error(
      [](const std::string& dir) {
        const std::string path = dir + "/" + kShard1;
        SafetensorsImage img = SafetensorsImage::read(path);
        std::string text = img.header.dump();
        text = text.substr(0, text.size() / 2) + std::string(text.size() - text.size() / 2, ' ');
        test::write_file(path, img.with_header_text(text));
      },
      kShard1, "", "malformed JSON");
}

TEST(RuntimeLoaderErrors, OverlappingData) {
  expect_checkpoint_error(
      [](const std::string& dir) {
        const std::string path = dir + "/" + kShard1;
        SafetensorsImage img = SafetensorsImage::read(path);
        // Two tensors of the same byte size: point the second at the first one's data.
        std::map<uint64_t, std::string> by_size;
        for (auto it = img.header.begin(); it != img.header.end(); ++it) {
          if (it.key() == "__metadata__") continue;
          const uint64_t size = it.value()["data_offsets"][1].get<uint64_t>() -
                                it.value()["data_offsets"][0].get<uint64_t>();
          auto seen = by_size.find(size);
          if (seen != by_size.end()) {
            it.value()["data_offsets"] = img.header[seen->second]["data_offsets"];
            break;
          }
          by_size[size] = it.key();
        }
        img.write(path);
      },
      kShard1, "*", "overlaps");
}

TEST(RuntimeLoaderErrors, MalformedConfig) {
  expect_checkpoint_error(
      [](const std::string& dir) { test::write_file(dir + "/config.json", "{\"hidden_size\": 128,,}"); },
      "config.json", "", "malformed JSON");
  expect_checkpoint_error(
      [](const std::string& dir) {
        test::write_file(dir + "/generation_config.json", "{\"eos_token_id\": [1, \"x\"]}");
      },
      "generation_config.json", "", "eos_token_id");
}

TEST(RuntimeLoaderErrors, ShardNamedByIndexIsAbsent) {
  expect_checkpoint_error(
      [](const std::string& dir) { std::remove((dir + "/" + kShard2).c_str()); }, kShard2, "*",
      "shard named by model.safetensors.index.json is missing");
}

TEST(RuntimeLoaderErrors, FolderWithoutWeights) {
  expect_checkpoint_error(
      [](const std::string& dir) {
        std::remove((dir + "/" + kIndex).c_str());
      },
      "model", "", "has neither model.safetensors nor");
}

}  // namespace
}  // namespace losa::runtime
