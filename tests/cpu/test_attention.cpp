#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "common/direct_formula.hpp"
#include "common/test_util.hpp"
#include "losa/attention_state.hpp"
#include "losa/ops.hpp"

namespace losa {
namespace {

// Both sides compute in double and round to float once, so they agree to a few float ulps:
// 1e-6 relative leaves 10x headroom over float rounding (6e-8) summed over head_dim terms.
constexpr double kTol = 1e-6;

struct Case {
  int kv_len, page_size, num_q_heads, num_kv_heads, head_dim, block_size;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "L" << c.kv_len << "_P" << c.page_size << "_Hq" << c.num_q_heads << "_Hk" << c.num_kv_heads
      << "_D" << c.head_dim << "_B" << c.block_size;
}

class PrefixAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(PrefixAttentionTest, MatchesDirectFormulaDenseAndPerRow) {
  const Case c = GetParam();
  const BlockShape shape{c.block_size, c.num_q_heads, c.num_kv_heads, c.head_dim};
  test::RandomCache rc = test::make_random_cache(c.kv_len, c.num_kv_heads, c.head_dim,
                                                 c.page_size, DType::bf16, 100 + c.kv_len);
  const int n = rc.cache.num_pages(0);
  const auto q = test::random_vector(static_cast<size_t>(shape.num_rows()) * c.head_dim, 7);
  const float scale = shape.default_scale();

  // Dense, and a per-row random subset of pages (attend=own), every token computed.
  std::mt19937 rng(5);
  PageSelection own;
  own.num_pages = n;
  own.row_pages.resize(shape.num_rows());
  for (auto& pages : own.row_pages)
    for (int p = 0; p < n; ++p)
      if (rng() % 3 == 0 || p == n - 1) pages.push_back(p);
  own.kv_head_pages = union_per_kv_head(own.row_pages, shape);

  std::vector<int> tokens(c.block_size);
  for (int t = 0; t < c.block_size; ++t) tokens[t] = t;
  for (const PageSelection& sel : {select_all_pages(n, c.num_kv_heads), own}) {
    std::vector<float> o(q.size(), test::kPoison), lse(shape.num_rows(), test::kPoison);
    prefix_attention(rc.cache, 0, shape, q.data(), tokens, sel, scale, o.data(), lse.data());
    std::vector<float> ref_o(q.size()), ref_lse(shape.num_rows());
    for (int r = 0; r < shape.num_rows(); ++r) {
      const int kvh = shape.kv_head_of(r % c.num_q_heads);
      const auto& pages = sel.row_pages.empty() ? sel.kv_head_pages[kvh] : sel.row_pages[r];
      std::vector<double> od;
      ref_lse[r] = static_cast<float>(test::direct_attention(
          rc.keys, rc.values, c.kv_len, c.num_kv_heads, c.head_dim, c.page_size,
          &q[static_cast<size_t>(r) * c.head_dim], kvh, pages, scale, od));
      for (int d = 0; d < c.head_dim; ++d) ref_o[static_cast<size_t>(r) * c.head_dim + d] = static_cast<float>(od[d]);
    }
    EXPECT_LT(test::rel_l2(o, ref_o), kTol);
    EXPECT_LT(test::rel_l2(lse, ref_lse), kTol);
  }
}

INSTANTIATE_TEST_SUITE_P(AwkwardSizes, PrefixAttentionTest,
                         ::testing::Values(Case{1, 16, 4, 4, 64, 3}, Case{3, 16, 8, 2, 64, 1},
                                           Case{15, 16, 4, 1, 64, 2}, Case{16, 16, 8, 8, 64, 2},
                                           Case{17, 32, 4, 2, 128, 2}, Case{127, 16, 8, 2, 64, 3},
                                           Case{129, 64, 8, 1, 64, 2}, Case{300, 16, 4, 4, 128, 1}));

TEST(PrefixAttention, OnlyListedTokensAreWrittenAndEmptyPrefixIsEmptyState) {
  const BlockShape shape{4, 2, 1, 64};
  test::RandomCache rc = test::make_random_cache(40, 1, 64, 16, DType::f32, 3);
  const auto q = test::random_vector(static_cast<size_t>(shape.num_rows()) * 64, 9);
  std::vector<float> o(q.size(), test::kPoison), lse(shape.num_rows(), test::kPoison);
  prefix_attention(rc.cache, 0, shape, q.data(), {1, 3}, select_all_pages(3, 1),
                   shape.default_scale(), o.data(), lse.data());
  for (int r = 0; r < shape.num_rows(); ++r) {
    const bool listed = (r / 2) == 1 || (r / 2) == 3;
    EXPECT_EQ(std::isnan(lse[r]), !listed) << r;
  }
  // A sequence with no tokens: every row gets (o = 0, lse = -inf).
  const int empty = rc.cache.add_sequence();
  prefix_attention(rc.cache, empty, shape, q.data(), {0, 1, 2, 3}, select_all_pages(0, 1),
                   shape.default_scale(), o.data(), lse.data());
  for (int r = 0; r < shape.num_rows(); ++r) {
    EXPECT_EQ(lse[r], -INFINITY);
    for (int d = 0; d < 64; ++d) EXPECT_EQ(o[r * 64 + d], 0.0f);
  }
}

// Two tokens' rows over a 333-token prefix, and their state over every page: what the split
// merge and the subtraction are checked against.
struct TwoTokenPrefix {
  BlockShape shape{2, 4, 2, 64};
  test::RandomCache rc = test::make_random_cache(333, 2, 64, 16, DType::bf16, 21);
  int n = rc.cache.num_pages(0);
  std::vector<float> q = test::random_vector(static_cast<size_t>(shape.num_rows()) * 64, 4);
  std::vector<int> tokens{0, 1};
  std::vector<float> full_o, full_lse;
  TwoTokenPrefix() : full_o(q.size()), full_lse(shape.num_rows()) {
    prefix_attention(rc.cache, 0, shape, q.data(), tokens, select_all_pages(n, 2), shape.default_scale(),
                     full_o.data(), full_lse.data());
  }
};

TEST(MergeState, AnySplitEqualsNoSplit) {
  const TwoTokenPrefix f;
  std::mt19937 rng(8);
  for (int trial = 0; trial < 20; ++trial) {
    // Random assignment of pages to 1..6 splits; some splits stay empty.
    const int num_splits = 1 + trial % 6;
    std::vector<PageSelection> splits(num_splits);
    for (auto& s : splits) {
      s.num_pages = f.n;
      s.kv_head_pages.assign(2, {});
    }
    for (int p = 0; p < f.n; ++p)
      for (int h = 0; h < 2; ++h) splits[rng() % num_splits].kv_head_pages[h].push_back(p);
    std::vector<float> o(f.q.size(), 0.0f), lse(f.shape.num_rows(), -INFINITY);
    std::vector<int> order(num_splits);
    for (int i = 0; i < num_splits; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (int i : order) {
      std::vector<float> so(f.q.size(), test::kPoison), sl(f.shape.num_rows(), test::kPoison);
      prefix_attention(f.rc.cache, 0, f.shape, f.q.data(), f.tokens, splits[i], f.shape.default_scale(),
                       so.data(), sl.data());
      for (int r = 0; r < f.shape.num_rows(); ++r)
        merge_state(&o[r * 64], lse[r], &so[r * 64], sl[r], 64, &o[r * 64], &lse[r]);
    }
    EXPECT_LT(test::rel_l2(o, f.full_o), 1e-6) << "splits " << num_splits;
    EXPECT_LT(test::rel_l2(lse, f.full_lse), 1e-6) << "splits " << num_splits;
  }
}

TEST(MergeState, EmptyStatesAreIdentity) {
  const auto a = test::random_vector(64, 1);
  std::vector<float> o(64);
  float lse = 0.0f;
  const std::vector<float> zeros(64, 0.0f);
  merge_state(a.data(), 1.5f, zeros.data(), -INFINITY, 64, o.data(), &lse);
  EXPECT_EQ(lse, 1.5f);
  EXPECT_EQ(test::rel_l2(o, a), 0.0);
  merge_state(zeros.data(), -INFINITY, zeros.data(), -INFINITY, 64, o.data(), &lse);
  EXPECT_EQ(lse, -INFINITY);
  for (float v : o) EXPECT_EQ(v, 0.0f);
}

// Subtracting a subset's state from the whole leaves the state of the rest: checked against
// the attention over the complementary pages computed directly.
TEST(SubtractState, WholeLessPartIsTheRest) {
  const TwoTokenPrefix f;
  std::mt19937 rng(9);
  for (int trial = 0; trial < 20; ++trial) {
    PageSelection part, rest;
    part.num_pages = rest.num_pages = f.n;
    part.kv_head_pages.assign(2, {});
    rest.kv_head_pages.assign(2, {});
    for (int p = 0; p < f.n; ++p)
      for (int h = 0; h < 2; ++h) (rng() % 3 == 0 ? part : rest).kv_head_pages[h].push_back(p);
    std::vector<float> po(f.q.size()), pl(f.shape.num_rows()), ro(f.q.size()), rl(f.shape.num_rows());
    prefix_attention(f.rc.cache, 0, f.shape, f.q.data(), f.tokens, part, f.shape.default_scale(), po.data(), pl.data());
    prefix_attention(f.rc.cache, 0, f.shape, f.q.data(), f.tokens, rest, f.shape.default_scale(), ro.data(), rl.data());
    std::vector<float> o(f.q.size(), test::kPoison), lse(f.shape.num_rows(), test::kPoison);
    for (int r = 0; r < f.shape.num_rows(); ++r)
      subtract_state(&f.full_o[r * 64], f.full_lse[r], &po[r * 64], pl[r], 64, &o[r * 64], &lse[r]);
    // fp32 states: the difference of two sums loses the digits the part held (a third of the mass).
    EXPECT_LT(test::rel_l2(o, ro), 1e-5) << "trial " << trial;
    EXPECT_LT(test::rel_l2(lse, rl), 1e-5) << "trial " << trial;
  }
}

TEST(SubtractState, EmptyPartIsIdentityAndWholePartLeavesNothing) {
  const auto a = test::random_vector(64, 1), b = test::random_vector(64, 2);
  std::vector<float> o(64);
  float lse = 0.0f;
  subtract_state(a.data(), 1.5f, b.data(), -INFINITY, 64, o.data(), &lse);
  EXPECT_EQ(lse, 1.5f);
  EXPECT_LT(test::rel_l2(o, a), 1e-7);
  subtract_state(a.data(), 1.5f, a.data(), 1.5f, 64, o.data(), &lse);  // the part is all of it
  EXPECT_EQ(lse, -INFINITY);
  for (float v : o) EXPECT_EQ(v, 0.0f);
  subtract_state(a.data(), 1.5f, b.data(), 1.5f + 1e-7f, 64, o.data(), &lse);  // rounding past the whole
  EXPECT_EQ(lse, -INFINITY);
  subtract_state(a.data(), -INFINITY, b.data(), -INFINITY, 64, o.data(), &lse);
  EXPECT_EQ(lse, -INFINITY);
  // A remainder under kSubtractEmptyBelow of the mass is dropped; one above it is kept.
  const float lse_a = 2.0f;
  subtract_state(a.data(), lse_a, b.data(), lse_a + std::log(1.0f - 0.5f * kSubtractEmptyBelow), 64, o.data(), &lse);
  EXPECT_EQ(lse, -INFINITY);
  subtract_state(a.data(), lse_a, b.data(), lse_a + std::log(1.0f - 2.0f * kSubtractEmptyBelow), 64, o.data(), &lse);
  EXPECT_NEAR(lse, lse_a + std::log(2.0 * kSubtractEmptyBelow), 1e-5);
}

TEST(BlockAttention, MatchesDirectFormula) {
  for (const BlockShape shape : {BlockShape{1, 4, 4, 64}, BlockShape{16, 8, 2, 128}, BlockShape{5, 8, 1, 64}}) {
    const int D = shape.head_dim, Hk = shape.num_kv_heads;
    const auto q = test::random_vector(static_cast<size_t>(shape.num_rows()) * D, 1);
    const auto k = test::random_vector(static_cast<size_t>(shape.block_size) * Hk * D, 2);
    const auto v = test::random_vector(k.size(), 3);
    std::vector<float> o(q.size(), test::kPoison), lse(shape.num_rows(), test::kPoison);
    block_attention(shape, q.data(), k.data(), v.data(), 0.1f, o.data(), lse.data());
    std::vector<float> ref_o(q.size()), ref_lse(shape.num_rows());
    std::vector<int> all{0};  // the block as one "page" of block_size tokens
    for (int r = 0; r < shape.num_rows(); ++r) {
      std::vector<double> od;
      ref_lse[r] = static_cast<float>(test::direct_attention(
          k, v, shape.block_size, Hk, D, shape.block_size, &q[static_cast<size_t>(r) * D],
          shape.kv_head_of(r % shape.num_q_heads), all, 0.1, od));
      for (int d = 0; d < D; ++d) ref_o[static_cast<size_t>(r) * D + d] = static_cast<float>(od[d]);
    }
    EXPECT_LT(test::rel_l2(o, ref_o), kTol);
    EXPECT_LT(test::rel_l2(lse, ref_lse), kTol);
  }
}

}  // namespace
}  // namespace losa
