#pragma once
// Choosing a token for one block position from its logits row: greedy, or temperature / top-k /
// top-p sampling from a counter-based generator. A pure function of (logits row, params, key):
// the same key gives the same draw whatever the batch order, thread or backend, so the CUDA
// backend can call it on downloaded rows (or match it on the device for greedy).
#include <cstdint>

namespace losa::runtime {

struct SamplerParams {
  double temperature = 0.0;  ///< 0: greedy
  int top_k = 0;             ///< 0: off; else keep logits >= the k-th largest (SDAR's rule)
  double top_p = 1.0;        ///< 1: off; else the smallest prefix of sorted tokens reaching p
  /// 0: every logit row entry is a candidate. Else only ids below it are: the tokenizer's size,
  /// because a model's embedding rows past its tokenizer (SDAR: ids 151670..151935, padding to
  /// a multiple of 128) are not tokens and must never be chosen. The distribution (and so the
  /// confidence the strategies rank by) is then the softmax over these ids alone.
  int64_t vocab_limit = 0;
};

/// Throws ArgumentError naming the bad field.
void validate(const SamplerParams& params);

/// Identifies one draw: the user's seed, the sequence (its prompt's index), the decoded block
/// (0 = the first block after the prefill), the denoising step in the block, the block position.
struct SampleKey {
  uint64_t seed = 0;
  int64_t sequence = 0;
  int64_t block = 0;
  int32_t step = 0;
  int32_t position = 0;
};

/// The token proposed for one block position and the confidence the strategies rank it by.
struct TokenProposal {
  int32_t token = -1;
  float confidence = 0.0f;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);
  const SamplerParams& params() const { return params_; }
  bool greedy() const { return params_.temperature == 0.0; }

  /// logits: [vocab] fp32; only the first min(vocab, params.vocab_limit) entries count when the
  /// limit is set. The distribution is softmax(logits / T) restricted by top-k then
  /// top-p (SDAR's order and rules) and renormalised; the token is drawn by inverse CDF (in
  /// token-id order) with a uniform from `key`, and confidence is its probability there.
  /// Greedy: argmax (ties to the lowest id); confidence is its probability under the same
  /// filtering at temperature 1. A NaN logit is an error (ArgumentError "logits").
  TokenProposal sample(const float* logits, int64_t vocab, const SampleKey& key) const;

 private:
  SamplerParams params_;
};

/// The uniform in [0, 1) that `key` draws (splitmix64 over its fields).
double key_uniform(const SampleKey& key);

}  // namespace losa::runtime
