// config.json / generation_config.json -> ModelConfig, with every unsupported setting rejected.
#include "losa/runtime/model_config.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "json_fields.hpp"
#include "losa/paged_kv.hpp"

namespace losa::runtime {
namespace {

using detail::json;
using detail::JsonFields;

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// eos_token_id is an integer or a list of integers in both files.
void collect_eos(const JsonFields& f, const json& object, int64_t vocab,
                 std::vector<int32_t>& out) {
  if (!f.has("eos_token_id")) return;
  const json& v = object.at("eos_token_id");
  const json list = v.is_array() ? v : json::array({v});
  for (const json& id : list) {
    if (!(id.is_number_integer() || id.is_number_unsigned()) || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= vocab)
      f.fail("eos_token_id", "must be token ids in [0, vocab_size=" + std::to_string(vocab) +
                                 "), got " + v.dump());
    out.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
}

RopeScaling parse_rope(const JsonFields& top, const char* key, double& rope_theta) {
  RopeScaling r;
  if (!top.has(key)) return r;
  const JsonFields f = top.nested(key);
  std::string type = f.string_or("rope_type", f.string_or("type", "default"));
  if (f.has("rope_theta")) rope_theta = f.number("rope_theta");
  if (f.has("partial_rotary_factor") && f.number("partial_rotary_factor") != 1.0)
    f.fail("partial_rotary_factor", "must be 1 (partial rotary embeddings are not implemented)");
  if (type == "default") return r;
  if (type == "dynamic")
    f.fail("rope_type", "'dynamic' is not supported (its frequencies depend on the sequence "
                        "length at run time); supported: default, linear, yarn, llama3");
  if (type != "linear" && type != "yarn" && type != "llama3")
    f.fail("rope_type", "unsupported rope_scaling type '" + type +
                            "'; supported: default, linear, yarn, llama3");
  r.type = type == "linear" ? RopeType::linear : type == "yarn" ? RopeType::yarn : RopeType::llama3;
  // transformers: original_max_position_embeddings at the top level of config.json wins (Phi3),
  // else the one in the rope dict, else max_position_embeddings.
  const double max_pos = top.number_or("max_position_embeddings", 0.0);
  r.original_max_position_embeddings =
      top.has("original_max_position_embeddings")
          ? top.number("original_max_position_embeddings")
          : f.number_or("original_max_position_embeddings", max_pos);
  if (r.type == RopeType::yarn && !f.has("factor")) {
    if (r.original_max_position_embeddings <= 0 || max_pos <= 0)
      f.fail("factor", "is missing and cannot be derived from max_position_embeddings");
    r.factor = max_pos / r.original_max_position_embeddings;
  } else {
    r.factor = f.number("factor");
  }
  if (!(r.factor > 0.0)) f.fail("factor", "must be > 0");
  if (r.type == RopeType::llama3) {
    r.low_freq_factor = f.number("low_freq_factor");
    r.high_freq_factor = f.number("high_freq_factor");
    if (!(r.high_freq_factor > r.low_freq_factor) || !(r.low_freq_factor > 0.0))
      f.fail("high_freq_factor", "must be > low_freq_factor > 0");
  }
  if (r.type == RopeType::yarn) {
    r.attention_factor = f.number_or("attention_factor", -1.0);
    // transformers: `get("beta_fast") or 32`, so 0 means the default too.
    r.beta_fast = f.number_or("beta_fast", 0.0);
    if (r.beta_fast == 0.0) r.beta_fast = 32.0;
    r.beta_slow = f.number_or("beta_slow", 0.0);
    if (r.beta_slow == 0.0) r.beta_slow = 1.0;
    r.mscale = f.number_or("mscale", 0.0);
    r.mscale_all_dim = f.number_or("mscale_all_dim", 0.0);
    r.truncate = f.boolean_or("truncate", true);
  }
  if ((r.type == RopeType::yarn || r.type == RopeType::llama3) &&
      !(r.original_max_position_embeddings > 0))
    f.fail("original_max_position_embeddings", "must be > 0");
  return r;
}

}  // namespace

const char* rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::plain: return "default";
    case RopeType::linear: return "linear";
    case RopeType::yarn: return "yarn";
    case RopeType::llama3: return "llama3";
  }
  return "?";
}

int64_t ModelConfig::num_parameters() const {
  const int64_t attn = hidden_size * (q_dim() + 2 * kv_dim()) + q_dim() * hidden_size + 2 * head_dim;
  const int64_t mlp = 3 * hidden_size * intermediate_size;
  const int64_t layer = attn + mlp + 2 * hidden_size;
  return num_hidden_layers * layer + vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2) +
         hidden_size;
}

ModelConfig parse_model_config(const std::string& config_json, const std::string& config_file,
                               const std::string& generation_json,
                               const std::string& generation_file) {
  const json config = detail::parse_json(config_json, config_file, "config");
  const JsonFields f(config, config_file);
  ModelConfig c;
  c.hidden_size = f.integer("hidden_size", 1, 1 << 20);
  c.intermediate_size = f.integer("intermediate_size", 1, 1 << 22);
  c.num_hidden_layers = static_cast<int>(f.integer("num_hidden_layers", 1, 4096));
  c.num_attention_heads = static_cast<int>(f.integer("num_attention_heads", 1, 4096));
  c.num_key_value_heads = static_cast<int>(
      f.integer_or("num_key_value_heads", c.num_attention_heads, 1, c.num_attention_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail("num_key_value_heads", "must divide num_attention_heads=" +
                                      std::to_string(c.num_attention_heads));
  if (!f.has("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    f.fail("head_dim", "is missing and hidden_size is not a multiple of num_attention_heads");
  c.head_dim = static_cast<int>(
      f.integer_or("head_dim", c.hidden_size / c.num_attention_heads, 1, 4096));
  if (!is_supported_head_dim(c.head_dim))
    f.fail("head_dim", "is " + std::to_string(c.head_dim) +
                           "; the attention engine implements head_dim 64 and 128");
  c.vocab_size = f.integer("vocab_size", 1, INT32_MAX);
  c.rms_norm_eps = f.number_or("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0.0)) f.fail("rms_norm_eps", "must be > 0");
  c.rope_theta = f.number_or("rope_theta", 10000.0);
  c.max_position_embeddings = f.integer_or("max_position_embeddings", 0, 0, INT64_MAX / 2);
  c.tie_word_embeddings = f.boolean_or("tie_word_embeddings", false);
  if (f.has("rope_parameters") && f.has("rope_scaling"))
    f.fail("rope_scaling", "and rope_parameters are both set; keep one");
  c.rope_scaling = parse_rope(f, f.has("rope_parameters") ? "rope_parameters" : "rope_scaling",
                              c.rope_theta);
  if (!(c.rope_theta > 0.0)) f.fail("rope_theta", "must be > 0");

  // Settings that would change the math in ways this runtime does not implement.
  if (f.string_or("hidden_act", "silu") != "silu")
    f.fail("hidden_act", "must be 'silu' (SwiGLU), got '" + f.string_or("hidden_act", "") + "'");
  if (f.boolean_or("attention_bias", false))
    f.fail("attention_bias", "is true; attention projections with biases are not implemented");
  if (f.boolean_or("use_sliding_window", false))
    f.fail("use_sliding_window", "is true; sliding-window attention is not implemented");
  if (f.integer_or("num_experts", 0, 0, INT32_MAX) > 0)
    f.fail("num_experts", "is set; mixture-of-experts models are not implemented");

  c.block_size = static_cast<int>(f.integer_or("block_size", 0, 1, 4096));
  c.mask_token_id = static_cast<int32_t>(f.integer_or("mask_token_id", -1, 0, c.vocab_size - 1));
  c.bos_token_id = static_cast<int32_t>(f.integer_or("bos_token_id", -1, 0, c.vocab_size - 1));
  collect_eos(f, config, c.vocab_size, c.eos_token_ids);
  if (!generation_json.empty()) {
    const json gen = detail::parse_json(generation_json, generation_file, "generation config");
    const JsonFields g(gen, generation_file);
    collect_eos(g, gen, c.vocab_size, c.eos_token_ids);
  }
  std::sort(c.eos_token_ids.begin(), c.eos_token_ids.end());
  c.eos_token_ids.erase(std::unique(c.eos_token_ids.begin(), c.eos_token_ids.end()),
                        c.eos_token_ids.end());
  return c;
}

std::string read_text_file(const std::string& path) {
  if (!is_file(path)) throw CheckpointError(path, "", "no such file");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) throw CheckpointError(path, "", "cannot be read");
  return text.str();
}

ModelConfig load_model_config(const std::string& path) {
  const bool folder = is_directory(path);
  const std::string dir = folder ? path : folder_of(path);
  const std::string config_file = folder ? dir + "/config.json" : path;
  const std::string generation_file = dir + "/generation_config.json";
  const std::string generation = is_file(generation_file) ? read_text_file(generation_file) : "";
  return parse_model_config(read_text_file(config_file), config_file, generation, generation_file);
}

}  // namespace losa::runtime
