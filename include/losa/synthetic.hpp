#pragma once
// A synthetic block-diffusion workload with the structure the paper describes, for demos,
// tests and benchmarks when no model is at hand.
//
// Keys have structure. The prefix is cut into segments of 32..512 tokens; per KV head each segment
// leans on one of `num_topics` random directions u (key = topic_strength * sqrt(D) * u + unit
// noise per dim), and about one token in `salient_every` is a heavy hitter with a large private
// direction w added (salient_strength * sqrt(D) * w). Page key bounds therefore differ, and QUEST
// scores rank a salient token's page, then its segment, above the rest; white-noise keys would
// make every page score alike.
// Queries: the row (token, head) aims at one salient prefix token j: q = anchor_gain * w_j +
// topic_gain * u_j + noise. Its attention peaks on j (logit about 13.5) with a tail over j's
// segment (about 4.5) and little elsewhere, whatever D is; rows aim at different tokens, so the
// union of their pages inflates as the paper's Figure 1 shows.
// Steps have locality: at every step t > 0 a few tokens (`changing_tokens`, the ones being
// unmasked) aim at new anchors and change a lot, while every other token drifts by a relative
// `drift` (about 1%) of its query, key and value.
#include <cstdint>
#include <string>
#include <vector>

#include "losa/paged_kv.hpp"
#include "losa/shapes.hpp"

namespace losa {

struct SyntheticConfig {
  BlockShape shape;
  int prefix_len = 4096;
  int page_size = 16;
  DType dtype = DType::bf16;
  int num_topics = 32;
  float topic_strength = 0.75f;    ///< topic part of a key, in units of sqrt(D)
  float salient_strength = 3.0f;   ///< private part of a heavy-hitter key, in units of sqrt(D)
  int salient_every = 32;          ///< about one key in this many is a heavy hitter
  float anchor_gain = 3.0f;        ///< |w part| of a query
  float topic_gain = 6.0f;         ///< |u part| of a query
  float query_noise = 0.05f;       ///< per-dim noise of a query
  int changing_tokens = 2;      ///< tokens that change a lot at each step t > 0
  double drift = 0.01;          ///< relative drift of the other tokens per step
  uint64_t seed = 1;
};

/// One paragraph describing the generator, for --help texts.
std::string synthetic_workload_description();

class SyntheticWorkload {
 public:
  explicit SyntheticWorkload(const SyntheticConfig& config);

  /// The cache the workload builds for `config`, without building anything: throws
  /// ArgumentError naming the first bad field of `config`, so a caller can validate it and size
  /// its memory (cache_pages of it, in 64 bits) before the prefix is generated.
  static PagedKVConfig cache_config(const SyntheticConfig& config);
  /// Pages of that cache: the prefix and room for a few committed blocks after it.
  static int64_t cache_pages(int64_t prefix_len, int page_size, int64_t block_size);

  const SyntheticConfig& config() const { return config_; }
  /// A cache holding the prefix as sequence 0 (pages in a permuted physical order).
  const PagedKVCache& cache() const { return cache_; }

  /// Advances to the next denoising step (the first call gives step 0) and returns its inputs.
  void next_step();
  int step() const { return step_; }
  const std::vector<float>& q() const { return q_; }          ///< [B, Hq, D]
  const std::vector<float>& k_block() const { return k_; }    ///< [B, Hk, D]
  const std::vector<float>& v_block() const { return v_; }    ///< [B, Hk, D]
  /// Tokens given new topics at the current step (empty at step 0).
  const std::vector<int>& changed_tokens() const { return changed_; }

 private:
  void assign_token(int token);
  float normal();
  void random_unit(float* x);  // x: [head_dim]

  SyntheticConfig config_;
  PagedKVCache cache_;
  uint64_t rng_state_;
  std::vector<float> topics_;     // [Hk, num_topics, D], unit vectors
  struct Salient {
    int topic;
    std::vector<float> direction;  // unit, [D]
  };
  std::vector<std::vector<Salient>> salient_;  // [Hk][...]
  std::vector<float> q_, k_, v_;
  std::vector<int> changed_;
  int step_ = -1;
};

}  // namespace losa
