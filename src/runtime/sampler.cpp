// Greedy and temperature / top-k / top-p sampling (SDAR's generate.py semantics).
#include "losa/runtime/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "losa/errors.hpp"
#include "losa/random.hpp"

namespace losa::runtime {

void validate(const SamplerParams& p) {
  LOSA_CHECK_ARG(std::isfinite(p.temperature) && p.temperature >= 0.0, "temperature",
                 "must be >= 0 (0 = greedy), got ", p.temperature);
  LOSA_CHECK_ARG(p.top_k >= 0, "top_k", "must be >= 0 (0 = off), got ", p.top_k);
  LOSA_CHECK_ARG(p.top_p > 0.0 && p.top_p <= 1.0, "top_p", "must be in (0, 1], got ", p.top_p);
  LOSA_CHECK_ARG(p.vocab_limit >= 0, "vocab_limit", "must be >= 0 (0 = off), got ", p.vocab_limit);
}

Sampler::Sampler(const SamplerParams& params) : params_(params) { validate(params_); }

double key_uniform(const SampleKey& k) {
  uint64_t h = splitmix64_mix(k.seed);
  h = splitmix64_mix(h ^ static_cast<uint64_t>(k.sequence));
  h = splitmix64_mix(h ^ static_cast<uint64_t>(k.block));
  h = splitmix64_mix(h ^ static_cast<uint64_t>(static_cast<uint32_t>(k.step)));
  h = splitmix64_mix(h ^ static_cast<uint64_t>(static_cast<uint32_t>(k.position)));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

TokenProposal Sampler::sample(const float* logits, int64_t row_size, const SampleKey& key) const {
  LOSA_CHECK_ARG(logits != nullptr && row_size > 0, "logits", "must be a non-empty row");
  const int64_t vocab = params_.vocab_limit > 0 ? std::min(row_size, params_.vocab_limit) : row_size;
  const double inv_t = greedy() ? 1.0 : 1.0 / params_.temperature;
  std::vector<double> z(static_cast<size_t>(vocab));
  int64_t argmax = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    LOSA_CHECK_ARG(!std::isnan(logits[i]) && logits[i] != std::numeric_limits<float>::infinity(),
                   "logits", "holds ", logits[i], " at token ", i);
    z[i] = static_cast<double>(logits[i]) * inv_t;
    if (z[i] > z[argmax]) argmax = i;  // strict: ties keep the lowest id
  }
  LOSA_CHECK_ARG(std::isfinite(z[argmax]), "logits", "has no finite value");
  const double ninf = -std::numeric_limits<double>::infinity();
  // top-k: keep every logit >= the k-th largest (ties at the threshold stay, as in SDAR).
  if (params_.top_k > 0 && params_.top_k < vocab) {
    std::vector<double> sorted(z);
    std::nth_element(sorted.begin(), sorted.begin() + (params_.top_k - 1), sorted.end(),
                     std::greater<double>());
    const double kth = sorted[params_.top_k - 1];
    for (double& v : z)
      if (v < kth) v = ninf;
  }
  const double zmax = z[argmax];  // the argmax survives any filtering
  std::vector<double> p(z.size());
  double total = 0.0;
  for (size_t i = 0; i < z.size(); ++i) total += (p[i] = std::exp(z[i] - zmax));
  // top-p: sorted by probability (ties to the lower id), drop tokens after the cumulative
  // probability has exceeded p; the token that crosses p stays (SDAR's shifted mask).
  if (params_.top_p < 1.0) {
    std::vector<int64_t> order(z.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return z[a] > z[b]; });
    double cumulative = 0.0, kept = 0.0;
    for (int64_t idx : order) {
      if (cumulative / total > params_.top_p) {
        p[idx] = 0.0;
      } else {
        cumulative += p[idx];
        kept += p[idx];
      }
    }
    total = kept;
  }
  int64_t token = argmax;
  if (!greedy()) {
    const double target = key_uniform(key) * total;
    double cumulative = 0.0;
    token = -1;
    for (int64_t i = 0; i < vocab; ++i) {
      if (p[i] == 0.0) continue;
      token = i;  // the last token with mass absorbs rounding at the top end
      cumulative += p[i];
      if (cumulative > target) break;
    }
  }
  return {static_cast<int32_t>(token), static_cast<float>(p[token] / total)};
}

}  // namespace losa::runtime
