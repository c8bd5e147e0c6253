#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/test_util.hpp"
#include "losa/ops.hpp"

namespace losa {
namespace {

TEST(ChangeScore, NormalisedMseOverHeads) {
  const BlockShape shape{3, 4, 2, 64};
  const auto q_ref = test::random_vector(3 * 4 * 64, 1);
  auto q = q_ref;
  for (int e = 0; e < 4 * 64; ++e) q[64 * 4 + e] += 0.5f;  // token 1 moves by 0.5 everywhere
  q[2 * 4 * 64 + 5] += 3.0f;                                 // token 2 moves in one element
  const auto delta = change_scores(shape, q.data(), q_ref.data());
  double norm1 = 0.0, norm2 = 0.0;
  for (int e = 0; e < 4 * 64; ++e) {
    norm1 += static_cast<double>(q_ref[4 * 64 + e]) * q_ref[4 * 64 + e];
    norm2 += static_cast<double>(q_ref[8 * 64 + e]) * q_ref[8 * 64 + e];
  }
  EXPECT_EQ(delta[0], 0.0);
  EXPECT_NEAR(delta[1], 4 * 64 * 0.25 / norm1, 1e-6 * delta[1]);
  EXPECT_NEAR(delta[2], 9.0 / norm2, 1e-5 * delta[2]);  // float rounding of q[.]+3 dominates

  // With keys and values: their normalised changes add on.
  const auto k_ref = test::random_vector(3 * 2 * 64, 2), v_ref = test::random_vector(3 * 2 * 64, 3);
  auto k = k_ref;
  k[0] *= 2.0f;  // token 0's key changes
  const auto with_kv = change_scores(shape, q.data(), q_ref.data(), k.data(), k_ref.data(),
                                     v_ref.data(), v_ref.data());
  double knorm = 0.0;
  for (int e = 0; e < 2 * 64; ++e) knorm += static_cast<double>(k_ref[e]) * k_ref[e];
  EXPECT_NEAR(with_kv[0], static_cast<double>(k_ref[0]) * k_ref[0] / knorm, 1e-9);
  EXPECT_EQ(with_kv[1], delta[1]);
}

TEST(ActiveSet, TopKWithTiesAndZeroChange) {
  const std::vector<double> d{0.1, 0.5, 0.0, 0.5, 0.2, 0.0};
  EXPECT_EQ(select_active_tokens(d, ActiveRule::top_k, 1, 0), (std::vector<int>{1}));
  EXPECT_EQ(select_active_tokens(d, ActiveRule::top_k, 3, 0), (std::vector<int>{1, 3, 4}));
  // Only four tokens changed at all: asking for six gives those four.
  EXPECT_EQ(select_active_tokens(d, ActiveRule::top_k, 6, 0), (std::vector<int>{0, 1, 3, 4}));
  EXPECT_EQ(select_active_tokens(d, ActiveRule::top_k, 0, 0), (std::vector<int>{}));
  const std::vector<double> zeros(6, 0.0);
  EXPECT_EQ(select_active_tokens(zeros, ActiveRule::tau, 0, 0.5), (std::vector<int>{}));
  EXPECT_EQ(select_active_tokens(zeros, ActiveRule::top_k, 4, 0), (std::vector<int>{}));
}

// The tau rule picks the smallest set whose share reaches tau, and among the sets of that
// size the one of largest scores (ties to lower index): checked by brute force over subsets.
TEST(ActiveSet, TauPicksSmallestSetReachingTau) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + trial % 10;
    std::vector<double> d(n);
    for (auto& x : d) x = (rng() % 4 == 0) ? 0.0 : (rng() % 1000) / 100.0;  // zeros and ties
    const double tau = 0.05 + (rng() % 95) / 100.0;
    const std::vector<int> got = select_active_tokens(d, ActiveRule::tau, 0, tau);
    double total = 0.0;
    for (double x : d) total += x;
    if (total == 0.0) {
      EXPECT_TRUE(got.empty());
      continue;
    }
    double got_sum = 0.0;
    for (int i : got) got_sum += d[i];
    EXPECT_GE(got_sum, tau * total * (1 - 1e-12));
    size_t best = n + 1;
    for (uint32_t mask = 0; mask < (1u << n); ++mask) {
      double s = 0.0;
      for (int i = 0; i < n; ++i)
        if (mask >> i & 1) s += d[i];
      if (s >= tau * total * (1 + 1e-12)) best = std::min<size_t>(best, __builtin_popcount(mask));
    }
    EXPECT_LE(got.size(), best) << "trial " << trial;
    // The chosen are the largest: nothing left out beats anything taken.
    for (int i = 0; i < n; ++i) {
      const bool taken = std::find(got.begin(), got.end(), i) != got.end();
      if (taken) continue;
      for (int j : got) EXPECT_TRUE(d[i] < d[j] || (d[i] == d[j] && i > j)) << trial;
    }
  }
}

// The delta_min rule: exactly the tokens at or above the threshold (the boundary included), and
// unlike tau its choice of one token does not depend on how much the others changed.
TEST(ActiveSet, DeltaMinTakesEveryTokenAtOrAboveTheThreshold) {
  const std::vector<double> d{0.1, 0.5, 0.0, 0.01, 0.009999, 2.0};
  EXPECT_EQ(select_active_tokens(d, ActiveRule::delta_min, 0, 0, 0.01), (std::vector<int>{0, 1, 3, 5}));
  EXPECT_EQ(select_active_tokens(d, ActiveRule::delta_min, 0, 0, 3.0), (std::vector<int>{}));
  // A positive threshold never takes an unchanged token, however small.
  EXPECT_EQ(select_active_tokens(d, ActiveRule::delta_min, 0, 0, 1e-300), (std::vector<int>{0, 1, 3, 4, 5}));
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + trial % 32;
    std::vector<double> x(n);
    for (auto& e : x) e = (rng() % 4 == 0) ? 0.0 : std::ldexp(static_cast<double>(rng() % 1000 + 1), -int(rng() % 20));
    const double theta = std::ldexp(static_cast<double>(rng() % 1000 + 1), -int(rng() % 20));
    const std::vector<int> got = select_active_tokens(x, ActiveRule::delta_min, 0, 0, theta);
    std::vector<int> want;
    for (int i = 0; i < n; ++i)
      if (x[i] >= theta) want.push_back(i);
    EXPECT_EQ(got, want) << "trial " << trial;
    // One token's change growing a thousandfold leaves every other token's choice as it was.
    std::vector<double> y = x;
    y[trial % n] *= 1000.0;
    const std::vector<int> grown = select_active_tokens(y, ActiveRule::delta_min, 0, 0, theta);
    for (int i = 0; i < n; ++i)
      if (i != trial % n)
        EXPECT_EQ(std::count(grown.begin(), grown.end(), i), std::count(got.begin(), got.end(), i)) << trial;
  }
}

}  // namespace
}  // namespace losa
