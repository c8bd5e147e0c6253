// Single kernels against the CPU reference: append with key bounds, QUEST scores, top-k.
#include <cuda_runtime.h>

#include <cstring>
#include <sstream>

#include "../../src/cuda/launchers.hpp"
#include "gpu_test_util.hpp"
#include "losa/ops.hpp"

namespace losa {
namespace {

struct KernelCase {
  int kv_len, page_size, head_dim, num_q_heads, num_kv_heads, block_size;
  DType dtype;
};

std::ostream& operator<<(std::ostream& os, const KernelCase& c) {
  return os << "L" << c.kv_len << "_P" << c.page_size << "_D" << c.head_dim << "_Hq" << c.num_q_heads
            << "_Hk" << c.num_kv_heads << "_B" << c.block_size << "_" << dtype_name(c.dtype);
}

void PrintTo(const KernelCase& c, std::ostream* os) { *os << c; }

class GpuKernelTest : public ::testing::TestWithParam<KernelCase> {};

// Appending on the device gives the same pages and bounds as appending on the CPU, across
// page boundaries (chunks of 1, 6, 11, ... tokens), bit for bit.
TEST_P(GpuKernelTest, AppendMatchesCpuCache) {
  LOSA_REQUIRE_GPU();
  const KernelCase c = GetParam();
  test::RandomCache rc = test::make_random_cache(c.kv_len, c.num_kv_heads, c.head_dim, c.page_size, c.dtype, 3);
  PagedKVConfig cfg = rc.cache.config();
  cuda::DevicePagedKV dev(cfg);
  PagedKVCache mirror(PagedKVConfig{cfg.num_kv_heads, cfg.head_dim, cfg.page_size, cfg.max_pages, cfg.dtype, 0});
  const int seq = mirror.add_sequence();
  const size_t row = static_cast<size_t>(c.num_kv_heads) * c.head_dim;
  int done = 0, chunk = 1;
  while (done < c.kv_len) {
    const int n = std::min(chunk, c.kv_len - done);
    std::vector<float> k(rc.keys.begin() + done * row, rc.keys.begin() + (done + n) * row);
    std::vector<float> v(rc.values.begin() + done * row, rc.values.begin() + (done + n) * row);
    cuda::DeviceBuffer dk = cuda::upload_as(c.dtype, k), dv = cuda::upload_as(c.dtype, v);
    dev.append(dk.data(), dv.data(), n);
    cuda::synchronize(nullptr);
    mirror.append(seq, k.data(), v.data(), n);
    done += n;
    chunk += 5;
  }
  ASSERT_EQ(dev.kv_len(), c.kv_len);
  ASSERT_EQ(dev.page_table_host(), std::vector<int32_t>(mirror.indices().begin(), mirror.indices().end()));
  std::vector<uint8_t> keys(mirror.page_pool_bytes()), mins(mirror.bounds_bytes()), maxs(mirror.bounds_bytes());
  cudaMemcpy(keys.data(), dev.keys(), keys.size(), cudaMemcpyDeviceToHost);
  cudaMemcpy(mins.data(), dev.key_min(), mins.size(), cudaMemcpyDeviceToHost);
  cudaMemcpy(maxs.data(), dev.key_max(), maxs.size(), cudaMemcpyDeviceToHost);
  EXPECT_EQ(0, memcmp(keys.data(), mirror.keys_data(), keys.size()));
  EXPECT_EQ(0, memcmp(mins.data(), mirror.key_min_data(), mins.size()));
  EXPECT_EQ(0, memcmp(maxs.data(), mirror.key_max_data(), maxs.size()));
}

// QUEST scores on tensor cores against the double-precision bound, for a subset of active
// tokens; then the per-row top-k from them is a valid top-k of the CPU scores.
TEST_P(GpuKernelTest, QuestScoresAndTopKMatchReference) {
  LOSA_REQUIRE_GPU();
  const KernelCase c = GetParam();
  const BlockShape shape{c.block_size, c.num_q_heads, c.num_kv_heads, c.head_dim};
  test::RandomCache rc = test::make_random_cache(c.kv_len, c.num_kv_heads, c.head_dim, c.page_size, c.dtype, 5, 2.0f);
  cuda::DevicePagedKV dev(rc.cache.config());
  dev.upload(rc.cache, 0);
  const int n = dev.num_pages(), G = shape.group_size(), max_rows = c.block_size * G;
  const auto q = test::rounded(test::random_vector(static_cast<size_t>(shape.num_rows()) * c.head_dim, 6), c.dtype);
  std::vector<int> tokens;
  for (int t = 0; t < c.block_size; t += 2) tokens.push_back(t);  // every other token active
  std::vector<int32_t> token_list(c.block_size, -1), slots(c.block_size, -1);
  for (size_t a = 0; a < tokens.size(); ++a) {
    token_list[a] = tokens[a];
    slots[tokens[a]] = static_cast<int>(a);
  }
  const int32_t count = static_cast<int32_t>(tokens.size());
  cuda::DeviceBuffer dq = cuda::upload_as(c.dtype, q), d_tokens(c.block_size * 4), d_count(4), d_slots(c.block_size * 4);
  d_tokens.upload(token_list.data(), c.block_size * 4);
  d_count.upload(&count, 4);
  d_slots.upload(slots.data(), c.block_size * 4);
  cuda::DeviceBuffer scores(static_cast<size_t>(c.num_kv_heads) * max_rows * n * 4);
  std::vector<float> poison(scores.bytes() / 4, test::kPoison);
  scores.upload(poison.data(), scores.bytes());

  cuda::PagedKVView view{dev.keys(), dev.values(), dev.key_min(), dev.key_max(), dev.page_table(),
                         n, dev.last_page_len(), c.num_kv_heads, c.page_size};
  cuda::QuestScoreParams qp;
  qp.kv = view;
  qp.active = {d_tokens.as<int32_t>(), d_count.as<int32_t>(), d_slots.as<int32_t>()};
  qp.q = dq.data();
  qp.num_q_heads = c.num_q_heads;
  qp.group = G;
  qp.max_rows = max_rows;
  qp.scores = scores.as<float>();
  qp.score_stride = n;
  cuda::launch_quest_scores(c.dtype, c.head_dim, qp, (max_rows + 63) / 64, nullptr);

  const int budget_pages = 3;
  const int words = (n + 31) / 32;
  const int flag_stride = (n + 3) / 4 * 4;
  cuda::DeviceBuffer flags(static_cast<size_t>(c.num_kv_heads) * flag_stride), bits(static_cast<size_t>(c.num_kv_heads) * max_rows * words * 4);
  flags.fill_bytes(0);
  cuda::TopKParams tp;
  tp.scores = scores.as<float>();
  tp.score_stride = n;
  tp.rows_per_kv_head = max_rows;
  tp.active_count = d_count.as<int32_t>();
  tp.group = G;
  tp.num_pages = n;
  tp.keep_last = true;
  tp.k = budget_pages;
  tp.union_flags = flags.as<uint8_t>();
  tp.flag_stride = flag_stride;
  tp.row_bits = bits.as<uint32_t>();
  tp.words = words;
  cuda::launch_topk(tp, c.num_kv_heads, nullptr);
  cuda::synchronize(nullptr);

  std::vector<float> got(scores.bytes() / 4);
  scores.download(got.data(), scores.bytes());
  std::vector<uint32_t> got_bits(bits.bytes() / 4);
  bits.download(got_bits.data(), bits.bytes());
  std::vector<uint8_t> got_flags(flags.bytes());
  flags.download(got_flags.data(), flags.bytes());
  const auto ref = quest_page_scores(rc.cache, 0, shape, q.data(), tokens);
  double worst = 0.0;
  for (size_t a = 0; a < tokens.size(); ++a)
    for (int h = 0; h < c.num_q_heads; ++h) {
      const int kvh = h / G, r = static_cast<int>(a) * G + h % G;
      const double* ref_row = &ref[(a * c.num_q_heads + h) * n];
      const float* got_row = &got[(static_cast<size_t>(kvh) * max_rows + r) * n];
      const double scale = test::max_abs(ref_row, n) + 1e-30;
      for (int p = 0; p < n; ++p) {
        ASSERT_FALSE(std::isnan(got_row[p])) << "row " << r << " page " << p << " unwritten";
        worst = std::max(worst, std::abs(got_row[p] - ref_row[p]) / scale);
      }
      // fp32 accumulation of exact bf16/f16 products: ~1e-6 of the row's scale.
      std::vector<int> chosen;
      bool has_last = false;
      const uint32_t* b = &got_bits[(static_cast<size_t>(kvh) * max_rows + r) * words];
      for (int p = 0; p < n; ++p)
        if (b[p >> 5] >> (p & 31) & 1u) {
          if (p == n - 1) has_last = true;
          else chosen.push_back(p);
          EXPECT_EQ(got_flags[static_cast<size_t>(kvh) * flag_stride + p], 1) << "union misses page " << p;
        }
      EXPECT_TRUE(has_last) << "last page not kept";
      EXPECT_TRUE(test::valid_top_k(ref_row, n - 1, budget_pages, chosen, 1e-5 * scale)) << "row " << r;
    }
  EXPECT_LT(worst, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, GpuKernelTest,
    ::testing::Values(KernelCase{1, 16, 64, 4, 4, 2, DType::bf16}, KernelCase{17, 16, 128, 8, 2, 3, DType::bf16},
                      KernelCase{127, 32, 64, 8, 1, 5, DType::f16}, KernelCase{129, 64, 128, 4, 2, 16, DType::bf16},
                      KernelCase{1000, 16, 128, 32, 8, 16, DType::bf16}, KernelCase{3000, 16, 64, 16, 2, 32, DType::f16},
                      KernelCase{9000, 16, 128, 32, 8, 16, DType::bf16}),
    [](const auto& info) {
      std::ostringstream os;
      os << info.param;
      return os.str();
    });

}  // namespace
}  // namespace losa
