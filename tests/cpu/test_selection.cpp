#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "common/direct_formula.hpp"
#include "common/test_util.hpp"
#include "losa/ops.hpp"

namespace losa {
namespace {

std::vector<int> iota_vec(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(TopK, LargestWithTiesToLowerIndex) {
  const std::vector<double> s{1, 3, 3, 2, 3, -1};
  EXPECT_EQ(top_k_indices(s.data(), 6, 2), (std::vector<int>{1, 2}));
  EXPECT_EQ(top_k_indices(s.data(), 6, 4), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(top_k_indices(s.data(), 6, 0), (std::vector<int>{}));
  EXPECT_EQ(top_k_indices(s.data(), 6, 9), iota_vec(6));
}

TEST(Quest, PageScoresMatchUpperBoundFormula) {
  const BlockShape shape{3, 8, 2, 64};
  const int P = 16, L = 150;
  test::RandomCache rc = test::make_random_cache(L, 2, 64, P, DType::bf16, 5);
  const int n = rc.cache.num_pages(0);
  const auto q = test::random_vector(static_cast<size_t>(shape.num_rows()) * 64, 6);
  const std::vector<int> tokens{0, 2};
  const auto scores = quest_page_scores(rc.cache, 0, shape, q.data(), tokens);
  ASSERT_EQ(scores.size(), tokens.size() * 8 * n);
  double max_err = 0.0;
  for (size_t ti = 0; ti < tokens.size(); ++ti)
    for (int h = 0; h < 8; ++h)
      for (int p = 0; p < n; ++p) {
        const int kvh = shape.kv_head_of(h);
        double ref = 0.0;
        for (int d = 0; d < 64; ++d) {
          double lo = INFINITY, hi = -INFINITY;
          for (int t = p * P; t < std::min(L, (p + 1) * P); ++t) {
            lo = std::min<double>(lo, rc.keys[(static_cast<size_t>(t) * 2 + kvh) * 64 + d]);
            hi = std::max<double>(hi, rc.keys[(static_cast<size_t>(t) * 2 + kvh) * 64 + d]);
          }
          const double qd = q[(static_cast<size_t>(tokens[ti]) * 8 + h) * 64 + d];
          ref += std::max(qd * lo, qd * hi);
        }
        max_err = std::max(max_err, std::abs(scores[(ti * 8 + h) * n + p] - ref));
      }
  EXPECT_LT(max_err, 1e-9);
}

TEST(Quest, RowKeepsLastPageAndTopBudget) {
  const std::vector<double> s{5, 1, 9, 9, 0, 7, -3};  // page 6 is the last
  EXPECT_EQ(quest_row_pages(s.data(), 7, 2), (std::vector<int>{2, 3, 6}));
  EXPECT_EQ(quest_row_pages(s.data(), 7, 3), (std::vector<int>{2, 3, 5, 6}));
  EXPECT_EQ(quest_row_pages(s.data(), 7, 6), iota_vec(7));   // n <= k + 1: all
  EXPECT_EQ(quest_row_pages(s.data(), 7, 60), iota_vec(7));
  EXPECT_EQ(quest_row_pages(s.data(), 1, 2), (std::vector<int>{0}));
  EXPECT_EQ(quest_row_pages(s.data(), 0, 2), (std::vector<int>{}));
}

TEST(Quest, UnionPerKvHeadAndAttendUnion) {
  const BlockShape shape{2, 4, 2, 64};
  std::vector<std::vector<int>> rows{{0, 5}, {3, 5}, {1, 5}, {1, 2, 5}, {4, 5}, {0, 5}, {5}, {2, 5}};
  // Row r is (token r / 4, head r % 4); heads 0,1 -> KV head 0; heads 2,3 -> KV head 1.
  const auto u = union_per_kv_head(rows, shape);
  EXPECT_EQ(u[0], (std::vector<int>{0, 3, 4, 5}));
  EXPECT_EQ(u[1], (std::vector<int>{1, 2, 5}));

  test::RandomCache rc = test::make_random_cache(200, 2, 64, 16, DType::bf16, 2);
  const auto q = test::random_vector(static_cast<size_t>(shape.num_rows()) * 64, 3);
  const PageSelection own = quest_select(rc.cache, 0, shape, q.data(), {0, 1}, 48, Attend::own);
  const PageSelection uni = quest_select(rc.cache, 0, shape, q.data(), {0, 1}, 48, Attend::union_);
  EXPECT_EQ(own.kv_head_pages, uni.kv_head_pages);
  EXPECT_TRUE(uni.row_pages.empty());
  for (const auto& pages : own.row_pages) EXPECT_EQ(pages.size(), 4u);  // 48 / 16 + last
}

TEST(Quest, BudgetCoveringThePrefixEqualsDense) {
  for (int L : {1, 16, 100, 257}) {
    const BlockShape shape{4, 8, 2, 64};
    test::RandomCache rc = test::make_random_cache(L, 2, 64, 16, DType::bf16, L);
    const int n = rc.cache.num_pages(0);
    const auto q = test::random_vector(static_cast<size_t>(shape.num_rows()) * 64, 1);
    const auto tokens = iota_vec(4);
    const PageSelection sel = quest_select(rc.cache, 0, shape, q.data(), tokens, n * 16, Attend::own);
    std::vector<float> o1(q.size(), test::kPoison), l1(shape.num_rows(), test::kPoison);
    std::vector<float> o2(q.size(), test::kPoison), l2(shape.num_rows(), test::kPoison);
    prefix_attention(rc.cache, 0, shape, q.data(), tokens, sel, 0.125f, o1.data(), l1.data());
    prefix_attention(rc.cache, 0, shape, q.data(), tokens, select_all_pages(n, 2), 0.125f,
                     o2.data(), l2.data());
    EXPECT_EQ(test::rel_l2(o1, o2), 0.0) << L;
    EXPECT_EQ(test::rel_l2(l1, l2), 0.0) << L;
  }
}

TEST(SparseD, MassSumsToPrefixShareAndSelectionIsTopByHead) {
  const BlockShape shape{4, 4, 2, 64};
  test::RandomCache rc = test::make_random_cache(300, 2, 64, 16, DType::bf16, 9, 2.0f);
  const int n = rc.cache.num_pages(0);
  const auto q = test::random_vector(static_cast<size_t>(shape.num_rows()) * 64, 2);
  std::vector<float> o(q.size()), lse(shape.num_rows());
  prefix_attention(rc.cache, 0, shape, q.data(), iota_vec(4), select_all_pages(n, 2), 0.125f,
                   o.data(), lse.data());
  // Normalised by the prefix lse itself, each row's probabilities over the pages sum to one.
  const auto mass = sparsed_page_mass(rc.cache, 0, shape, q.data(), lse.data(), 0.125f);
  for (int h = 0; h < 4; ++h) {
    double total = 0.0;
    for (int p = 0; p < n; ++p) total += mass[h * n + p];
    EXPECT_NEAR(total, 4.0, 1e-6);
  }
  // One page's mass against the direct formula.
  std::vector<double> od;
  const int h = 3, p = 7, kvh = shape.kv_head_of(h);
  double direct = 0.0;
  for (int t = 0; t < 4; ++t) {
    const double page_lse = test::direct_attention(rc.keys, rc.values, 300, 2, 64, 16,
                                                   &q[(t * 4 + h) * 64], kvh, {p}, 0.125, od);
    direct += std::exp(page_lse - lse[t * 4 + h]);
  }
  EXPECT_NEAR(mass[h * n + p], direct, 1e-9);

  EXPECT_EQ(sparsed_pages_kept(19, 0.3), 6);
  EXPECT_EQ(sparsed_pages_kept(19, 0.01), 1);
  const PageSelection sel = sparsed_select(mass, shape, n, 0.3, Attend::own);
  const int kept = sparsed_pages_kept(n, 0.3);
  for (int r = 0; r < shape.num_rows(); ++r) {
    const int head = r % 4;
    EXPECT_EQ(sel.row_pages[r], top_k_indices(&mass[head * n], n, kept));
  }
}

}  // namespace
}  // namespace losa
