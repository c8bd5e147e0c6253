#pragma once
// The model backend: runs the whole model (every layer) over one batch of sequences, each with
// its paged KV cache per layer and its per-layer block state. The decoder (decoder.hpp) drives
// it and never sees tensors; a backend never sees scheduling or strategies.
//
// Shapes: S sequences, B = block_size, V = vocab_size. A forward over a block computes, per layer,
// q/k/v of the B block tokens at positions kv_length(s) .. kv_length(s) + B - 1 and hands them to
// the attention mode (losa::layer_step on the CPU), which merges the prefix part (the cache) with
// the block part (the block's own keys, bidirectional).
#include <cstdint>
#include <memory>
#include <vector>

#include "losa/dtype.hpp"
#include "losa/layer_step.hpp"
#include "losa/modes.hpp"
#include "losa/runtime/model_config.hpp"
#include "losa/runtime/sampler.hpp"
#include "losa/runtime/weights.hpp"

namespace losa::runtime {

struct ForwardOptions {
  int block_size = 4;  ///< B, 1..64 (the decoder checks the range it supports)
  /// Attention mode and its options, for every layer (each layer keeps its own block state).
  /// mode.steps_per_block is SparseD's T: the decoder sets it to its steps per block.
  ModeConfig mode;
  int page_size = 16;             ///< 16, 32 or 64
  DType kv_dtype = DType::bf16;   ///< KV cache storage; f32 for comparisons with references
  int prefill_chunk = 1024;       ///< tokens per prefill chunk, a multiple of block_size
  bool record_decisions = false;  ///< keep each forward's StepDecisions (backend-vs-backend tests)
  /// Keep 8-bit page bounds in the cache (also when mode.bounds8 is off), so that
  /// set_attention_mode may switch to a mode with bounds8 later.
  bool keep_bounds8 = false;
};

/// Throws ArgumentError naming the bad field.
void validate(const ForwardOptions& options, const ModelConfig& config);

/// What one forward did, aggregated from the per-(layer, sequence) StepStats.
struct ForwardReport {
  /// Per layer [num_layers]: attention density (mean over the sequences that took part and have
  /// a non-empty prefix), active tokens (mean over the sequences that took part), KV and bound
  /// bytes read (summed over them).
  std::vector<double> layer_density, layer_active_tokens;
  std::vector<int64_t> layer_kv_bytes, layer_bounds_bytes;
  /// Per sequence and layer [S * num_layers, sequence-major]: density and active tokens (0 where
  /// the sequence took no part).
  std::vector<double> sequence_layer_density, sequence_layer_active_tokens;
  std::vector<uint8_t> took_part;  ///< [S]

  double density() const;        ///< mean of layer_density
  double active_tokens() const;  ///< mean of layer_active_tokens
  int64_t kv_bytes() const;      ///< sum over layers
  /// Per sequence [S]: sequence_layer_density / sequence_layer_active_tokens averaged over layers.
  std::vector<double> sequence_density() const;
  std::vector<double> sequence_active_tokens() const;
};

/// StepDecisions of one forward: [num_layers][S] (empty for sequences that took no part).
using ForwardDecisions = std::vector<std::vector<StepDecisions>>;

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;
  virtual const ModelConfig& config() const = 0;

  /// Starts a batch of S = prefill_tokens.size() sequences: sequence s is prefilled with
  /// prefill_tokens[s] (a multiple of block_size tokens, may be empty), block-causally, in
  /// chunks of options.prefill_chunk tokens, writing K/V and page bounds into every layer's cache.
  /// capacity_tokens[s]: the most tokens sequence s will hold (prefill + committed blocks), for
  /// reserving pages; memory needs are checked in 64 bits against the host before allocating.
  virtual void start(const std::vector<std::vector<int32_t>>& prefill_tokens,
                     const std::vector<int64_t>& capacity_tokens, const ForwardOptions& options) = 0;

  virtual int num_sequences() const = 0;
  /// Tokens in sequence s's cache: the position of its current block's first token.
  virtual int64_t kv_length(int seq) const = 0;

  /// The next forward is step 0 of a new block for every sequence (LoSA/SparseD state reset).
  virtual void begin_block() = 0;

  /// Changes the attention mode (and its options) for the blocks that follow; the caches stay.
  /// Call between blocks (before begin_block): evaluations and benchmarks compare modes on one
  /// prefill. mode.bounds8 needs a batch started with it (the cache keeps the 8-bit bounds).
  virtual void set_attention_mode(const ModeConfig& mode) = 0;

  /// A denoising forward of each taking-part sequence's current block. Does not store K/V.
  /// block_tokens: [S, B] (the mask id where unknown); take_part: [S] non-zero for the sequences
  /// to run (nullptr: all). keys: [S], each sequence's sample key (position is set here).
  /// Writes logits [S, B, V] fp32 (see last_logits) and proposals [S, B] =
  /// sampler.sample(logits row, key with position i); rows of other sequences are untouched.
  virtual ForwardReport denoise(const int32_t* block_tokens, const uint8_t* take_part,
                                const Sampler& sampler, const SampleKey* keys,
                                TokenProposal* proposals) = 0;

  /// The commit forward: one more step of the block for the taking-part sequences (the mode
  /// applies, as to any step), after which each layer appends the block's K/V to its cache.
  /// No logits. A sequence that does not take part keeps its cache as it was.
  virtual ForwardReport commit(const int32_t* block_tokens, const uint8_t* take_part) = 0;

  /// The last denoise's logits [S, B, V] (rows of sequences that took no part: stale).
  virtual const float* last_logits() const = 0;

  /// With options.record_decisions: what each (layer, sequence) chose in the last forward.
  virtual const ForwardDecisions& last_decisions() const = 0;
  /// Makes the next forward (denoise or commit) replay these choices instead of deciding, so
  /// that two backends can be compared on the same selection; used once, then cleared.
  virtual void replay_next(ForwardDecisions decisions) = 0;
};

/// The CPU reference backend: fp32 activations, double accumulation in every dot product,
/// losa::layer_step for attention. `weights` must outlive the backend. num_threads 0: all cores.
std::unique_ptr<ModelBackend> make_cpu_backend(const Weights& weights, int num_threads = 0);

}  // namespace losa::runtime
