#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "losa/errors.hpp"
#include "losa/ops.hpp"
#include "losa/synthetic.hpp"

namespace losa {
namespace {

SyntheticConfig small_config() {
  SyntheticConfig c;
  c.shape = BlockShape{16, 8, 2, 64};
  c.prefix_len = 2000;
  c.changing_tokens = 3;
  c.seed = 5;
  return c;
}

TEST(Synthetic, SameSeedSameData) {
  SyntheticWorkload a(small_config()), b(small_config());
  for (int t = 0; t < 3; ++t) {
    a.next_step();
    b.next_step();
    EXPECT_EQ(a.q(), b.q());
    EXPECT_EQ(a.k_block(), b.k_block());
    EXPECT_EQ(a.changed_tokens(), b.changed_tokens());
  }
}

TEST(Synthetic, StepsHaveLocality) {
  SyntheticWorkload w(small_config());
  w.next_step();
  std::vector<float> prev = w.q();
  for (int t = 1; t < 5; ++t) {
    w.next_step();
    const auto delta = change_scores(w.config().shape, w.q().data(), prev.data());
    ASSERT_EQ(w.changed_tokens().size(), 3u);
    double min_changed = INFINITY, max_stable = 0.0;
    for (int i = 0; i < 16; ++i) {
      const bool changed = std::binary_search(w.changed_tokens().begin(), w.changed_tokens().end(), i);
      if (changed) min_changed = std::min(min_changed, delta[i]);
      else max_stable = std::max(max_stable, delta[i]);
    }
    EXPECT_GT(min_changed, 20 * max_stable) << "step " << t;  // drift ~1e-4 against ~1
    EXPECT_LT(max_stable, 1e-3);
    prev = w.q();
  }
}

TEST(Synthetic, KeysHaveStructurePageScoresSeparate) {
  SyntheticWorkload w(small_config());
  w.next_step();
  const auto scores = quest_page_scores(w.cache(), 0, w.config().shape, w.q().data(), {0});
  const int n = w.cache().num_pages(0);
  // Per row: the best page scores well above the median page (with white-noise keys the
  // spread would be a few percent).
  for (int h = 0; h < 8; ++h) {
    std::vector<double> row(scores.begin() + h * n, scores.begin() + (h + 1) * n);
    std::sort(row.begin(), row.end());
    EXPECT_GT(row.back() - row[n / 2], 0.5 * std::abs(row[n / 2])) << "head " << h;
  }
}

// The cache is sized in 64 bits before anything is built: the largest prefix does not wrap
// around, and what no page table holds, or a page size of 0, is refused by name.
TEST(Synthetic, CacheConfigIsCheckedIn64Bits) {
  SyntheticConfig c = small_config();
  c.prefix_len = INT_MAX;
  EXPECT_EQ(SyntheticWorkload::cache_config(c).max_pages,
            (int64_t{INT_MAX} + 15) / 16 + 4 * 16 + 1);
  auto argument_of = [](const SyntheticConfig& bad) -> std::string {
    try {
      SyntheticWorkload::cache_config(bad);
    } catch (const ArgumentError& e) {
      return e.argument();
    }
    return "no error";
  };
  c = small_config();
  c.shape.block_size = 1 << 30;
  c.changing_tokens = 0;
  EXPECT_EQ(argument_of(c), "block_size");
  c = small_config();
  c.page_size = 0;
  EXPECT_EQ(argument_of(c), "page_size");
}

}  // namespace
}  // namespace losa
