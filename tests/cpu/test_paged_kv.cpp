#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>
#include <set>

#include "common/test_util.hpp"
#include "losa/errors.hpp"

namespace losa {

class PagedKVTest : public ::testing::TestWithParam<std::tuple<int, int, DType>> {};

TEST_P(PagedKVTest, AppendKeepsTokensBoundsAndCsr) {
  const auto [kv_len, page_size, dtype] = GetParam();
  const int Hk = 2, D = 64;
  test::RandomCache rc = test::make_random_cache(kv_len, Hk, D, page_size, dtype, 11 + kv_len);
  const PagedKVCache& c = rc.cache;
  ASSERT_EQ(c.kv_len(0), kv_len);
  const int n = (kv_len + page_size - 1) / page_size;
  ASSERT_EQ(c.num_pages(0), n);
  ASSERT_EQ(c.indptr().size(), 2u);
  EXPECT_EQ(c.indptr()[1] - c.indptr()[0], n);
  EXPECT_EQ(c.last_page_len()[0], kv_len - (n - 1) * page_size);
  std::set<int> distinct(c.indices().begin(), c.indices().end());
  EXPECT_EQ(static_cast<int>(distinct.size()), n);
  for (int p = 0; p < n; ++p) {
    const int phys = c.indices()[p];
    EXPECT_EQ(c.page_id(0, p), phys);
    for (int h = 0; h < Hk; ++h)
      for (int d = 0; d < D; ++d) {
        float lo = INFINITY, hi = -INFINITY;
        for (int s = 0; s < c.tokens_in_page(0, p); ++s) {
          const size_t e = (static_cast<size_t>(p * page_size + s) * Hk + h) * D + d;
          ASSERT_EQ(c.key(phys, h, s, d), rc.keys[e]);
          ASSERT_EQ(c.value(phys, h, s, d), rc.values[e]);
          lo = std::min(lo, rc.keys[e]);
          hi = std::max(hi, rc.keys[e]);
        }
        ASSERT_EQ(c.key_min(phys, h, d), lo) << "page " << p;
        ASSERT_EQ(c.key_max(phys, h, d), hi) << "page " << p;
      }
  }
  // The row accessors decode a slot's keys and values exactly as the element accessors do
  // (poisoned first, so a dim they skip shows).
  std::vector<float> k_row(D), v_row(D);
  for (int p = 0; p < n; ++p)
    for (int h = 0; h < Hk; ++h)
      for (int s = 0; s < c.tokens_in_page(0, p); ++s) {
        std::fill(k_row.begin(), k_row.end(), NAN);
        std::fill(v_row.begin(), v_row.end(), NAN);
        c.key_row(c.page_id(0, p), h, s, k_row.data());
        c.value_row(c.page_id(0, p), h, s, v_row.data());
        for (int d = 0; d < D; ++d) {
          ASSERT_EQ(k_row[d], c.key(c.page_id(0, p), h, s, d)) << "page " << p << " slot " << s;
          ASSERT_EQ(v_row[d], c.value(c.page_id(0, p), h, s, d)) << "page " << p << " slot " << s;
        }
      }
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, PagedKVTest,
    ::testing::Values(std::make_tuple(1, 16, DType::bf16), std::make_tuple(3, 16, DType::f32),
                      std::make_tuple(16, 16, DType::bf16), std::make_tuple(17, 16, DType::f16),
                      std::make_tuple(127, 32, DType::bf16), std::make_tuple(129, 64, DType::f32),
                      std::make_tuple(200, 16, DType::bf16)));

TEST(PagedKV, SecondSequenceAndCapacity) {
  PagedKVConfig cfg;
  cfg.num_kv_heads = 1;
  cfg.head_dim = 64;
  cfg.page_size = 16;
  cfg.max_pages = 3;
  PagedKVCache c(cfg);
  const int a = c.add_sequence(), b = c.add_sequence();
  const auto k = test::random_vector(40 * 64, 1), v = test::random_vector(40 * 64, 2);
  c.append(a, k.data(), v.data(), 20);  // 2 pages
  c.append(b, k.data(), v.data(), 16);  // 1 page
  EXPECT_EQ(c.indptr(), (std::vector<int32_t>{0, 2, 3}));
  EXPECT_EQ(c.num_pages(b), 1);
  c.append(a, k.data(), v.data(), 12);  // fills page 2 of a: no new page
  EXPECT_EQ(c.kv_len(a), 32);
  try {
    c.append(b, k.data(), v.data(), 1);  // needs a 4th page
    FAIL() << "no error";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), "num_tokens");
  }
}

}  // namespace losa
