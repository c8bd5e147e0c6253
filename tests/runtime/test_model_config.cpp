// config.json parsing: SDAR-8B's real files, RoPE scaling against transformers, bad configs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>

#include "losa/errors.hpp"
#include "losa/runtime/rope.hpp"
#include "losa/runtime/weights.hpp"
#include "runtime/fixture.hpp"

namespace losa::runtime {
namespace {

TEST(RuntimeModelConfig, Sdar8bChat) {
  const ModelConfig c = load_model_config(test::fixture_dir() + "/sdar-8b-chat");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 12288);
  EXPECT_EQ(c.num_hidden_layers, 36);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, RopeType::plain);
  EXPECT_EQ(c.block_size, 4);
  EXPECT_EQ(c.mask_token_id, 151669);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{151643, 151645}));  // config + generation_config
}

// The tensor names and sizes of the real 8B checkpoint are exactly what the loader expects.
TEST(RuntimeModelConfig, Sdar8bTensorNamesMatchTheIndex) {
  const ModelConfig c = load_model_config(test::fixture_dir() + "/sdar-8b-chat");
  const auto index = nlohmann::json::parse(
      test::read_file(test::fixture_dir() + "/sdar-8b-chat/model.safetensors.index.json"));
  std::set<std::string> names;
  for (const auto& [name, shape] : expected_tensors(c)) names.insert(name);
  std::set<std::string> listed;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) listed.insert(it.key());
  EXPECT_EQ(names, listed);
  EXPECT_EQ(c.num_parameters() * 2, index["metadata"]["total_size"].get<int64_t>());  // bf16
}

// make_rope_table against transformers' own functions (tools/fixtures/make_tiny_sdar.py).
TEST(RuntimeModelConfig, RopeTablesMatchTransformers) {
  for (const auto& r : test::tiny_reference()["rope"]) {
    nlohmann::json cfg = nlohmann::json::parse(test::read_file(test::tiny_model("bf16-sharded") + "/config.json"));
    cfg["rope_scaling"] = r["rope_scaling"];
    cfg["rope_theta"] = r["rope_theta"];
    cfg["max_position_embeddings"] = r["max_position_embeddings"];
    const RopeTable t = make_rope_table(parse_model_config(cfg.dump(), "config.json"));
    const auto expected = r["inv_freq"].get<std::vector<double>>();
    ASSERT_EQ(t.inv_freq.size(), expected.size());
    // transformers computes in fp32: agreement to a few fp32 ulps.
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_NEAR(t.inv_freq[i], expected[i], 4e-7 * expected[i]) << r["rope_scaling"].dump() << " i=" << i;
    EXPECT_NEAR(t.attention_factor, r["attention_factor"].get<double>(), 1e-12) << r["rope_scaling"].dump();
  }
}

TEST(RuntimeModelConfig, RopeRotatesPairsByAngle) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 100.0;
  const RopeTable t = make_rope_table(c);
  std::vector<float> x(64, 0.0f);
  x[3] = 1.0f;  // pair (3, 35)
  apply_rope(t, 7, 1, 64, x.data());
  const double angle = 7.0 * t.inv_freq[3];
  EXPECT_NEAR(x[3], std::cos(angle), 1e-6);
  EXPECT_NEAR(x[35], std::sin(angle), 1e-6);
}

void expect_config_error(const std::function<void(nlohmann::json&)>& edit, const std::string& field) {
  nlohmann::json cfg = nlohmann::json::parse(test::read_file(test::tiny_model("bf16-sharded") + "/config.json"));
  edit(cfg);
  try {
    parse_model_config(cfg.dump(), "some/config.json");
    ADD_FAILURE() << "accepted a bad " << field;
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), "some/config.json");
    EXPECT_NE(std::string(e.what()).find("'" + field + "'"), std::string::npos) << e.what();
  }
}

TEST(RuntimeModelConfig, UnsupportedSettingsAreRejected) {
  expect_config_error([](auto& c) { c.erase("hidden_size"); }, "hidden_size");
  expect_config_error([](auto& c) { c["hidden_size"] = "128"; }, "hidden_size");
  expect_config_error([](auto& c) { c["num_key_value_heads"] = 3; }, "num_key_value_heads");
  expect_config_error([](auto& c) { c["head_dim"] = 96; }, "head_dim");
  expect_config_error([](auto& c) { c["attention_bias"] = true; }, "attention_bias");
  expect_config_error([](auto& c) { c["hidden_act"] = "gelu"; }, "hidden_act");
  expect_config_error([](auto& c) { c["use_sliding_window"] = true; }, "use_sliding_window");
  expect_config_error([](auto& c) { c["num_experts"] = 8; }, "num_experts");
  expect_config_error([](auto& c) { c["mask_token_id"] = 512; }, "mask_token_id");
  expect_config_error([](auto& c) { c["eos_token_id"] = {1, 9999}; }, "eos_token_id");
  expect_config_error([](auto& c) { c["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}}; },
                      "rope_scaling.rope_type");
  expect_config_error([](auto& c) { c["rope_scaling"] = {{"type", "longrope"}, {"factor", 2.0}}; },
                      "rope_scaling.rope_type");
  expect_config_error([](auto& c) { c["rope_scaling"] = {{"rope_type", "linear"}}; }, "rope_scaling.factor");
  expect_config_error([](auto& c) { c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}}; },
                      "rope_scaling.low_freq_factor");
}

TEST(RuntimeModelConfig, HeadDimDefaultsToHiddenOverHeads) {
  nlohmann::json cfg = nlohmann::json::parse(test::read_file(test::tiny_model("bf16-sharded") + "/config.json"));
  cfg.erase("head_dim");
  cfg["hidden_size"] = 256;  // 4 heads of 64
  EXPECT_EQ(parse_model_config(cfg.dump(), "config.json").head_dim, 64);
}

TEST(RuntimeModelConfig, RandomWeightsAreDeterministicAndScaled) {
  const ModelConfig c = load_model_config(test::tiny_model("bf16-sharded"));
  const Weights a = make_random_weights(c, 3, 2), b = make_random_weights(c, 3, 1), d = make_random_weights(c, 4, 2);
  const int64_t n = a.layers[1].gate_proj.numel();
  std::vector<float> ra(a.layers[1].gate_proj.cols()), rb(ra.size()), rd(ra.size());
  double sum_sq = 0.0;
  for (int64_t r = 0; r < a.layers[1].gate_proj.rows(); ++r) {
    a.layers[1].gate_proj.row_to_float(r, ra.data());
    b.layers[1].gate_proj.row_to_float(r, rb.data());
    EXPECT_EQ(ra, rb);  // thread count does not matter
    for (float x : ra) sum_sq += double(x) * x;
  }
  EXPECT_NEAR(std::sqrt(sum_sq / n), 0.02, 0.002);
  d.layers[1].gate_proj.row_to_float(0, rd.data());
  a.layers[1].gate_proj.row_to_float(0, ra.data());
  EXPECT_NE(ra, rd);
  std::vector<float> norm(c.hidden_size);
  a.norm.row_to_float(0, norm.data());
  for (float x : norm) EXPECT_NEAR(x, 1.0f, 0.15f);
  EXPECT_EQ(a.lm_head.dtype, DType::bf16);
}

TEST(RuntimeModelConfig, AbsurdRandomWeightsFailBeforeAllocating) {
  ModelConfig c = load_model_config(test::tiny_model("bf16-sharded"));
  c.vocab_size = int64_t{1} << 30;
  c.hidden_size = 1 << 16;  // 2^46 parameters
  try {
    make_random_weights(c, 0);
    ADD_FAILURE() << "allocated 128 TiB";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), "config");
    EXPECT_NE(std::string(e.what()).find("of memory"), std::string::npos) << e.what();
  }
}

// LOSA_HOST_MEMORY_LIMIT caps what check_host_memory allows, whatever the host has.
TEST(RuntimeModelConfig, HostMemoryLimitFromTheEnvironment) {
  const char* saved = std::getenv(kHostMemoryLimitVariable);
  const std::string restore = saved ? saved : "";
  ::setenv(kHostMemoryLimitVariable, "1M", 1);
  EXPECT_NO_THROW(check_host_memory(int64_t{1} << 20, "n", "a test"));
  try {
    check_host_memory((int64_t{1} << 20) + 1, "n", "a test");
    ADD_FAILURE() << "allowed more than 1M";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), "n");
    EXPECT_NE(std::string(e.what()).find("LOSA_HOST_MEMORY_LIMIT allows 1.00 MiB"), std::string::npos)
        << e.what();
  }
  ::setenv(kHostMemoryLimitVariable, "2 GiB", 1);  // not a byte count: the space
  try {
    check_host_memory(1, "n", "a test");
    ADD_FAILURE() << "accepted '2 GiB'";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), kHostMemoryLimitVariable);
  }
  ::setenv(kHostMemoryLimitVariable, "2GiB", 1);
  EXPECT_NO_THROW(check_host_memory(int64_t{2} << 30, "n", "a test"));
  if (saved) ::setenv(kHostMemoryLimitVariable, restore.c_str(), 1);
  else ::unsetenv(kHostMemoryLimitVariable);
}

}  // namespace
}  // namespace losa::runtime
