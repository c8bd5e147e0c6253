#include "losa/synthetic.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

#include "losa/errors.hpp"
#include "losa/random.hpp"

namespace losa {
namespace {

constexpr int kMinSegment = 32, kMaxSegment = 512, kAppendChunk = 1024;

uint64_t splitmix64(uint64_t& state) {  // one draw of the stream (SplitMix64::next's sequence)
  const uint64_t out = splitmix64_mix(state);
  state += 0x9e3779b97f4a7c15ull;
  return out;
}

}  // namespace

int64_t SyntheticWorkload::cache_pages(int64_t prefix_len, int page_size, int64_t block_size) {
  // Room for the prefix and a few committed blocks after it.
  return (prefix_len + page_size - 1) / page_size + 4 * block_size + 1;
}

PagedKVConfig SyntheticWorkload::cache_config(const SyntheticConfig& c) {
  validate(c.shape);
  // Before the division below, which a zero page size would crash.
  LOSA_CHECK_ARG(is_supported_page_size(c.page_size), "page_size", "must be 16, 32 or 64, got ",
                 c.page_size);
  LOSA_CHECK_ARG(c.prefix_len >= 0, "prefix_len", "must be >= 0, got ", c.prefix_len);
  LOSA_CHECK_ARG(c.num_topics > 0, "num_topics", "must be > 0, got ", c.num_topics);
  LOSA_CHECK_ARG(c.changing_tokens >= 0 && c.changing_tokens <= c.shape.block_size,
                 "changing_tokens", "must be in [0, block_size=", c.shape.block_size, "], got ",
                 c.changing_tokens);
  LOSA_CHECK_ARG(c.drift >= 0.0, "drift", "must be >= 0, got ", c.drift);
  LOSA_CHECK_ARG(c.salient_every > 0, "salient_every", "must be > 0, got ", c.salient_every);
  // In 64 bits, so that a prefix near INT_MAX does not wrap around to a negative count. The
  // prefix alone takes at most INT_MAX / 16 pages: only the room for blocks can overflow.
  const int64_t pages = cache_pages(c.prefix_len, c.page_size, c.shape.block_size);
  LOSA_CHECK_ARG(pages <= INT_MAX, "block_size", "needs ", pages, " pages of ", c.page_size,
                 " tokens, more than a cache holds (", INT_MAX, ")");
  PagedKVConfig kv;
  kv.num_kv_heads = c.shape.num_kv_heads;
  kv.head_dim = c.shape.head_dim;
  kv.page_size = c.page_size;
  kv.max_pages = static_cast<int>(pages);
  kv.dtype = c.dtype;
  kv.page_order_seed = c.seed * 7919 + 1;
  return kv;
}

std::string synthetic_workload_description() {
  return "Synthetic workload: the prefix is cut into segments of 32..512 tokens whose keys, per KV "
         "head, lean on one of a few topic directions, and about one key in 32 is a heavy hitter "
         "with a large private direction; so page key bounds differ and QUEST scores separate "
         "pages (white-noise keys would make every page score alike). Each (token, head) query "
         "aims at one heavy hitter: attention peaks there with a tail over its segment, and rows "
         "aim at different places, so the union of their pages inflates. Steps have locality: "
         "at each step a few tokens (--changing) aim anew and change a lot, the rest drift by "
         "about 1% (--drift).";
}

float SyntheticWorkload::normal() {
  // Box-Muller on two uniforms in (0, 1]: portable, so every platform draws the same numbers.
  const double u1 = (static_cast<double>(splitmix64(rng_state_) >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(splitmix64(rng_state_) >> 11) * 0x1.0p-53;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

SyntheticWorkload::SyntheticWorkload(const SyntheticConfig& config)
    : config_(config), cache_(cache_config(config)), rng_state_(config.seed) {
  const BlockShape& s = config_.shape;
  const int Hk = s.num_kv_heads, D = s.head_dim, T = config_.num_topics;
  const float root_d = std::sqrt(static_cast<float>(D));
  topics_.resize(static_cast<size_t>(Hk) * T * D);
  for (size_t v = 0; v < static_cast<size_t>(Hk) * T; ++v) random_unit(&topics_[v * D]);
  salient_.resize(Hk);

  const int seq = cache_.add_sequence();
  std::vector<float> k(static_cast<size_t>(kAppendChunk) * Hk * D), v(k.size()), w(D);
  std::vector<int> segment_topic(Hk);
  int segment_left = 0;
  for (int start = 0; start < config_.prefix_len; start += kAppendChunk) {
    const int count = std::min(kAppendChunk, config_.prefix_len - start);
    for (int t = 0; t < count; ++t) {
      if (segment_left == 0) {
        segment_left = kMinSegment + static_cast<int>(splitmix64(rng_state_) %
                                                      (kMaxSegment - kMinSegment + 1));
        for (int h = 0; h < Hk; ++h) segment_topic[h] = static_cast<int>(splitmix64(rng_state_) % T);
      }
      --segment_left;
      for (int h = 0; h < Hk; ++h) {
        const float* topic = &topics_[(static_cast<size_t>(h) * T + segment_topic[h]) * D];
        const bool salient = splitmix64(rng_state_) % config_.salient_every == 0;
        if (salient) {
          random_unit(w.data());
          salient_[h].push_back({segment_topic[h], w});
        }
        for (int d = 0; d < D; ++d) {
          const size_t e = (static_cast<size_t>(t) * Hk + h) * D + d;
          k[e] = config_.topic_strength * root_d * topic[d] + normal() +
                 (salient ? config_.salient_strength * root_d * w[d] : 0.0f);
          v[e] = normal();
        }
      }
    }
    cache_.append(seq, k.data(), v.data(), count);
  }
  q_.resize(static_cast<size_t>(s.num_rows()) * D);
  k_.resize(static_cast<size_t>(s.block_size) * Hk * D);
  v_.resize(k_.size());
}

void SyntheticWorkload::random_unit(float* x) {
  const int D = config_.shape.head_dim;
  double norm = 0.0;
  for (int d = 0; d < D; ++d) {
    x[d] = normal();
    norm += static_cast<double>(x[d]) * x[d];
  }
  for (int d = 0; d < D; ++d) x[d] = static_cast<float>(x[d] / std::sqrt(norm));
}

void SyntheticWorkload::assign_token(int token) {
  const BlockShape& s = config_.shape;
  const int Hk = s.num_kv_heads, D = s.head_dim, T = config_.num_topics;
  for (int h = 0; h < s.num_q_heads; ++h) {
    const auto& anchors = salient_[s.kv_head_of(h)];
    float* qr = &q_[(static_cast<size_t>(token) * s.num_q_heads + h) * D];
    if (anchors.empty()) {  // no heavy hitter to aim at: a plain random query
      for (int d = 0; d < D; ++d) qr[d] = config_.topic_gain * normal() / std::sqrt(static_cast<float>(D));
      continue;
    }
    const Salient& a = anchors[splitmix64(rng_state_) % anchors.size()];
    const float* topic = &topics_[(static_cast<size_t>(s.kv_head_of(h)) * T + a.topic) * D];
    for (int d = 0; d < D; ++d)
      qr[d] = config_.anchor_gain * a.direction[d] + config_.topic_gain * topic[d] +
              config_.query_noise * normal();
  }
  const float root_d = std::sqrt(static_cast<float>(D));
  for (int h = 0; h < Hk; ++h) {
    const float* dir = &topics_[(static_cast<size_t>(h) * T + splitmix64(rng_state_) % T) * D];
    const size_t base = (static_cast<size_t>(token) * Hk + h) * D;
    for (int d = 0; d < D; ++d) {
      k_[base + d] = config_.topic_strength * root_d * dir[d] + normal();
      v_[base + d] = normal();
    }
  }
}

void SyntheticWorkload::next_step() {
  ++step_;
  changed_.clear();
  const int B = config_.shape.block_size;
  if (step_ == 0) {
    for (int t = 0; t < B; ++t) assign_token(t);
    return;
  }
  std::vector<int> order(B);
  for (int t = 0; t < B; ++t) order[t] = t;
  for (int i = 0; i < config_.changing_tokens; ++i)  // partial Fisher-Yates
    std::swap(order[i], order[i + splitmix64(rng_state_) % (B - i)]);
  changed_.assign(order.begin(), order.begin() + config_.changing_tokens);
  std::sort(changed_.begin(), changed_.end());
  const int D = config_.shape.head_dim;
  auto drift_rows = [&](std::vector<float>& x, int rows_per_token, int token) {
    for (int r = 0; r < rows_per_token; ++r) {
      float* row = &x[(static_cast<size_t>(token) * rows_per_token + r) * D];
      double norm = 0.0;
      for (int d = 0; d < D; ++d) norm += static_cast<double>(row[d]) * row[d];
      const float step_size = static_cast<float>(config_.drift * std::sqrt(norm / D));
      for (int d = 0; d < D; ++d) row[d] += step_size * normal();
    }
  };
  for (int t = 0; t < B; ++t) {
    if (std::binary_search(changed_.begin(), changed_.end(), t)) {
      assign_token(t);
    } else {
      drift_rows(q_, config_.shape.num_q_heads, t);
      drift_rows(k_, config_.shape.num_kv_heads, t);
      drift_rows(v_, config_.shape.num_kv_heads, t);
    }
  }
}

}  // namespace losa
