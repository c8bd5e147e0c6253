#pragma once
// The weights of a model, wherever they come from (a memory-mapped checkpoint or generated at
// random): raw row-major tensors of bf16, f16 or f32, by role. Backends read TensorViews and never
// care about the source: the CPU backend decodes rows to fp32 as it goes; a GPU backend uploads
// the raw bytes (bf16 as is, others converted with losa::load_as).
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "losa/dtype.hpp"
#include "losa/runtime/model_config.hpp"

namespace losa::runtime {

/// A read-only view of one tensor. Shapes are PyTorch's: a Linear weight is [out, in].
struct TensorView {
  std::string name;  ///< the checkpoint's name, e.g. "model.layers.0.self_attn.q_proj.weight"
  DType dtype = DType::bf16;
  std::vector<int64_t> shape;
  const void* data = nullptr;  ///< numel() elements of dtype, row-major

  int64_t numel() const;
  int64_t bytes() const { return numel() * dtype_bytes(dtype); }
  int64_t rows() const { return shape.size() == 2 ? shape[0] : 1; }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  /// Decodes row r (of a 2-D tensor; r = 0 for a 1-D one) into out[cols()].
  void row_to_float(int64_t r, float* out) const;
};

/// One decoder layer. H = hidden_size, I = intermediate_size, D = head_dim, Hq/Hk heads.
struct LayerWeights {
  TensorView input_layernorm;           ///< [H]
  TensorView q_proj;                    ///< [Hq*D, H]
  TensorView k_proj;                    ///< [Hk*D, H]
  TensorView v_proj;                    ///< [Hk*D, H]
  TensorView o_proj;                    ///< [H, Hq*D]
  TensorView q_norm;                    ///< [D], per-head RMSNorm of q before RoPE
  TensorView k_norm;                    ///< [D]
  TensorView post_attention_layernorm;  ///< [H]
  TensorView gate_proj;                 ///< [I, H]
  TensorView up_proj;                   ///< [I, H]
  TensorView down_proj;                 ///< [H, I]
};

struct Weights {
  ModelConfig config;
  TensorView embed_tokens;  ///< [V, H]
  std::vector<LayerWeights> layers;
  TensorView norm;     ///< [H], the final model.norm
  TensorView lm_head;  ///< [V, H]; the same storage as embed_tokens when tie_word_embeddings
  std::string source;  ///< "checkpoint <folder>" or "random weights (seed N)", for messages
  /// Keeps the memory behind every view alive (the mappings or the generated buffer).
  std::shared_ptr<const void> storage;
};

/// The tensors a model of `config` has, in the checkpoint's names, with their shapes
/// (lm_head.weight only when the embeddings are not tied).
std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const ModelConfig& config);

/// Loads a Hugging Face model folder: config.json (+ generation_config.json) and
/// model.safetensors, or the shards listed by model.safetensors.index.json. The files are
/// memory-mapped. Throws CheckpointError naming the file and the tensor for a missing or
/// unexpected tensor, a wrong shape or dtype, a truncated or corrupt file, malformed JSON, or a
/// shard that the index names but the folder lacks. With tied embeddings an lm_head.weight in
/// the files is checked but not used (transformers ties it to embed_tokens as well).
Weights load_checkpoint(const std::string& folder);

/// Weights of `config`'s shape drawn at random, deterministically from `seed`, stored as bf16:
/// matrices and embeddings ~ normal(0, 0.02) (transformers' initializer_range), norm weights
/// ~ 1 + normal(0, 0.02). For speed work without a checkpoint. Checks the bytes needed against
/// the host's memory first (ArgumentError naming "config").
Weights make_random_weights(const ModelConfig& config, uint64_t seed, int num_threads = 0);

/// The environment variable that caps what check_host_memory allows, in bytes ("64G", "512M",
/// "68719476736"), in place of 90% of the physical RAM: for a shared machine, and for tests that
/// must be refused alike on every host.
inline constexpr const char* kHostMemoryLimitVariable = "LOSA_HOST_MEMORY_LIMIT";

/// Throws ArgumentError naming `argument` when `bytes` would not fit in this host's memory
/// (more than 90% of its physical RAM, or more than LOSA_HOST_MEMORY_LIMIT when that is set);
/// `what` says what the bytes are for.
void check_host_memory(int64_t bytes, const char* argument, const std::string& what);

/// "1.25 GiB" and the like, for messages.
std::string format_bytes(double bytes);

}  // namespace losa::runtime
