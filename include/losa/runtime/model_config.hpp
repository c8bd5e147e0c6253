#pragma once
// The hyper-parameters of a block-diffusion LM of the Qwen3 architecture (SDAR, TraDo), read from
// a Hugging Face model folder: config.json and, when present, generation_config.json.
// Every field here changes the math or the decoding; fields that would change the math in a way
// the runtime does not implement (attention biases, sliding windows, MoE, another activation, a
// RoPE type without a formula here) are rejected with an error naming the field, never ignored.
#include <cstdint>
#include <string>
#include <vector>

namespace losa::runtime {

/// RoPE frequency scaling as transformers defines it (`rope_scaling` in config.json of
/// transformers 4, `rope_parameters` in 5). `dynamic` depends on the sequence length at run time
/// and is rejected; `longrope` and others are rejected too.
enum class RopeType { plain, linear, yarn, llama3 };

struct RopeScaling {
  RopeType type = RopeType::plain;
  double factor = 1.0;
  // yarn and llama3
  double original_max_position_embeddings = 0.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // yarn (negative: absent, use transformers' default)
  double attention_factor = -1.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;
  double mscale_all_dim = 0.0;
  bool truncate = true;
};

const char* rope_type_name(RopeType t);

struct ModelConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int head_dim = 0;  ///< hidden_size / num_attention_heads when config.json has none
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;  ///< lm_head shares embed_tokens' weight
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  // Decoding (SDAR's config.json and generation_config.json).
  int block_size = 0;           ///< 0: the folder does not say (the caller must)
  int32_t mask_token_id = -1;   ///< -1: the folder does not say
  int32_t bos_token_id = -1;    ///< -1: none
  std::vector<int32_t> eos_token_ids;  ///< config.json's and generation_config.json's, merged, sorted

  int64_t q_dim() const { return static_cast<int64_t>(num_attention_heads) * head_dim; }
  int64_t kv_dim() const { return static_cast<int64_t>(num_key_value_heads) * head_dim; }
  /// Parameters of the model (lm_head counted once when tied).
  int64_t num_parameters() const;
};

/// Parses config.json text (and generation_config.json text, empty when the folder has none).
/// `config_file` / `generation_file` name the files in errors. Throws CheckpointError naming the
/// file and the field on malformed JSON, a missing or mistyped field, or an unsupported setting.
ModelConfig parse_model_config(const std::string& config_json, const std::string& config_file,
                               const std::string& generation_json = "",
                               const std::string& generation_file = "generation_config.json");

/// Reads `path`: a model folder (its config.json and generation_config.json if present) or a
/// config.json file (then a generation_config.json beside it is read too).
ModelConfig load_model_config(const std::string& path);

/// Reads a whole file; throws CheckpointError naming it when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace losa::runtime
