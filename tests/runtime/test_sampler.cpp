// The sampler (greedy, temperature, top-k, top-p; counter-based keys) and the strategies.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "losa/errors.hpp"
#include "losa/runtime/sampler.hpp"
#include "losa/runtime/strategies.hpp"

namespace losa::runtime {
namespace {

std::vector<double> softmax(const std::vector<float>& logits, double t) {
  double m = *std::max_element(logits.begin(), logits.end()), sum = 0.0;
  std::vector<double> p;
  for (float l : logits) sum += std::exp((l - m) / t);
  for (float l : logits) p.push_back(std::exp((l - m) / t) / sum);
  return p;
}

TEST(RuntimeSampler, GreedyTakesTheLowestArgmaxAndItsProbability) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  const TokenProposal p = Sampler({}).sample(logits.data(), 5, {});
  EXPECT_EQ(p.token, 1);
  EXPECT_NEAR(p.confidence, softmax(logits, 1.0)[1], 1e-7);
}

// Draws over many keys follow softmax(logits / T): within 5 standard errors per token.
TEST(RuntimeSampler, TemperatureSamplingFollowsTheDistribution) {
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 1.5f, 0.0f};
  const double t = 0.7;
  const std::vector<double> p = softmax(logits, t);
  const Sampler sampler({t, 0, 1.0});
  const int n = 40000;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < n; ++i) {
    const TokenProposal d = sampler.sample(logits.data(), 5, {9, 1, i / 64, i % 8, i % 64});
    ++counts[d.token];
    EXPECT_NEAR(d.confidence, p[d.token], 1e-6);
  }
  for (int k = 0; k < 5; ++k)
    EXPECT_NEAR(counts[k] / double(n), p[k], 5 * std::sqrt(p[k] * (1 - p[k]) / n)) << "token " << k;
}

TEST(RuntimeSampler, TopKAndTopPRestrictAndRenormalise) {
  const std::vector<float> logits = {3.0f, 1.0f, 2.0f, 1.0f, -2.0f, 0.0f};
  // top-k 2 keeps ids 0 and 2; renormalised confidence.
  const Sampler top_k({1.0, 2, 1.0});
  const std::vector<double> p = softmax(logits, 1.0);
  std::map<int, int> seen;
  for (int i = 0; i < 2000; ++i) {
    const TokenProposal d = top_k.sample(logits.data(), 6, {1, 0, 0, i, 0});
    ++seen[d.token];
    EXPECT_NEAR(d.confidence, p[d.token] / (p[0] + p[2]), 1e-6);
  }
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen.count(0) && seen.count(2));
  // top-k 3: the tie at the third value keeps both 1s (SDAR keeps logits >= the k-th).
  seen.clear();
  for (int i = 0; i < 4000; ++i) ++seen[Sampler({1.0, 3, 1.0}).sample(logits.data(), 6, {2, 0, 0, i, 0}).token];
  EXPECT_EQ(seen.size(), 4u);
  // top-p: sorted probabilities .63 .23 .086 .086 ...: p = 0.7 keeps the first two (the one that
  // crosses 0.7 stays).
  seen.clear();
  for (int i = 0; i < 2000; ++i) ++seen[Sampler({1.0, 0, 0.7}).sample(logits.data(), 6, {3, 0, 0, i, 0}).token];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen.count(0) && seen.count(2));
}

TEST(RuntimeSampler, KeysAreCounterBased) {
  const SampleKey a{1, 2, 3, 4, 5};
  EXPECT_EQ(key_uniform(a), key_uniform(a));
  for (SampleKey b : {SampleKey{2, 2, 3, 4, 5}, SampleKey{1, 3, 3, 4, 5}, SampleKey{1, 2, 4, 4, 5},
                      SampleKey{1, 2, 3, 5, 5}, SampleKey{1, 2, 3, 4, 6}})
    EXPECT_NE(key_uniform(a), key_uniform(b));
}

// Ids past vocab_limit (a model's padded embedding rows) are never chosen, greedy or sampled, even
// where their logits are the largest; the confidence is the softmax over the ids below the limit.
TEST(RuntimeSampler, VocabLimitLeavesPaddedRowsOut) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, 9.0f, 8.0f};  // ids 3, 4: padding
  const std::vector<float> tokens(logits.begin(), logits.begin() + 3);
  SamplerParams greedy;
  EXPECT_EQ(Sampler(greedy).sample(logits.data(), 5, {}).token, 3);  // without the limit
  greedy.vocab_limit = 3;
  const TokenProposal g = Sampler(greedy).sample(logits.data(), 5, {});
  EXPECT_EQ(g.token, 1);
  EXPECT_NEAR(g.confidence, softmax(tokens, 1.0)[1], 1e-7);
  SamplerParams hot{2.0, 0, 0.95, 3};
  for (int i = 0; i < 500; ++i) {
    const TokenProposal d = Sampler(hot).sample(logits.data(), 5, {4, 0, 0, i, 0});
    ASSERT_LT(d.token, 3) << "draw " << i;
  }
  greedy.vocab_limit = 9;  // a limit past the row: the whole row
  EXPECT_EQ(Sampler(greedy).sample(logits.data(), 5, {}).token, 3);
}

TEST(RuntimeSampler, BadInputIsAnError) {
  const std::vector<float> nan = {0.0f, std::nanf("")};
  EXPECT_THROW(Sampler({}).sample(nan.data(), 2, {}), ArgumentError);
  EXPECT_THROW(Sampler({-1.0, 0, 1.0}), ArgumentError);
  EXPECT_THROW(Sampler({1.0, -1, 1.0}), ArgumentError);
  EXPECT_THROW(Sampler({1.0, 0, 1.5}), ArgumentError);
  EXPECT_THROW(Sampler({1.0, 0, 1.0, -1}), ArgumentError);
}

TEST(RuntimeStrategies, TransferSchedule) {
  EXPECT_EQ(transfer_schedule(4, 4), (std::vector<int>{1, 1, 1, 1}));
  EXPECT_EQ(transfer_schedule(16, 5), (std::vector<int>{4, 3, 3, 3, 3}));
  EXPECT_EQ(transfer_schedule(4, 3), (std::vector<int>{2, 1, 1}));
  EXPECT_THROW(transfer_schedule(4, 5), ArgumentError);
  EXPECT_THROW(transfer_schedule(4, 0), ArgumentError);
}

TEST(RuntimeStrategies, ChoicesAndTheClamp) {
  //                 pos:  0      1      2      3      4      5
  const std::vector<TokenProposal> p = {{7, .9f}, {7, .2f}, {7, .6f}, {7, .95f}, {7, .6f}, {7, .1f}};
  const std::vector<uint8_t> masked = {0, 1, 1, 0, 1, 1};
  EXPECT_EQ(positions_to_unmask(Strategy::sequential, masked, p.data(), 2, 0.9), (std::vector<int>{1, 2}));
  // static: the most confident masks; the tie .6/.6 goes to the lower index.
  EXPECT_EQ(positions_to_unmask(Strategy::low_confidence_static, masked, p.data(), 1, 0.9), (std::vector<int>{2}));
  EXPECT_EQ(positions_to_unmask(Strategy::low_confidence_static, masked, p.data(), 3, 0.9), (std::vector<int>{1, 2, 4}));
  // dynamic: every mask above the threshold when there are at least n, else static.
  EXPECT_EQ(positions_to_unmask(Strategy::low_confidence_dynamic, masked, p.data(), 1, 0.5), (std::vector<int>{2, 4}));
  EXPECT_EQ(positions_to_unmask(Strategy::low_confidence_dynamic, masked, p.data(), 3, 0.5), (std::vector<int>{1, 2, 4}));
  // n above the masks left: clamped, and the fixed positions 0 and 3 (confident as they are)
  // are never chosen, unlike SDAR's python.
  for (Strategy s : {Strategy::sequential, Strategy::low_confidence_static, Strategy::low_confidence_dynamic})
    EXPECT_EQ(positions_to_unmask(s, masked, p.data(), 6, 0.5), (std::vector<int>{1, 2, 4, 5}));
  EXPECT_THROW(parse_strategy("random"), ArgumentError);
}

}  // namespace
}  // namespace losa::runtime
