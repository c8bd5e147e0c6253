// Single kernels against the CPU reference: append with key bounds (fp and 8-bit), the fused
// QUEST selection with exact ties, the top-k on crafted score rows, SparseD's attention mass.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <sstream>

#include "../../src/cuda/batch_view.hpp"
#include "../../src/cuda/launchers.hpp"
#include "gpu_test_util.hpp"
#include "losa/attention_state.hpp"
#include "losa/cuda/layer_step.hpp"
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

template <typename T>
std::vector<T> download(const void* device, size_t count) {
  std::vector<T> host(count);
  EXPECT_EQ(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

// Appending on the device gives the same pages and bounds (fp and 8-bit) as appending on the CPU,
// across page boundaries (chunks of 1, 6, 11, ... tokens), bit for bit.
TEST_P(GpuKernelTest, AppendMatchesCpuCache) {
  LOSA_REQUIRE_GPU();
  const KernelCase c = GetParam();
  test::RandomCache rc = test::make_random_cache(c.kv_len, c.num_kv_heads, c.head_dim, c.page_size, c.dtype, 3);
  PagedKVConfig cfg = rc.cache.config();
  cfg.page_order_seed = 0;
  cfg.keep_bounds8 = true;
  cuda::DevicePagedKV dev(cfg);
  PagedKVCache mirror(cfg);
  const int seq = mirror.add_sequence();
  const size_t row = static_cast<size_t>(c.num_kv_heads) * c.head_dim;
  int done = 0, chunk = 1;
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  while (done < c.kv_len) {
    const int n = std::min(chunk, c.kv_len - done);
    std::vector<float> k(rc.keys.begin() + done * row, rc.keys.begin() + (done + n) * row);
    std::vector<float> v(rc.values.begin() + done * row, rc.values.begin() + (done + n) * row);
    cuda::DeviceBuffer dk = cuda::upload_as(c.dtype, k), dv = cuda::upload_as(c.dtype, v);
    dev.append(dk.data(), dv.data(), n, stream);  // a non-blocking stream: no legacy-stream ordering to lean on
    cuda::synchronize(stream);
    mirror.append(seq, k.data(), v.data(), n);
    done += n;
    chunk += 5;
  }
  cudaStreamDestroy(stream);
  ASSERT_EQ(dev.kv_len(), c.kv_len);
  ASSERT_EQ(dev.page_table_host(), std::vector<int32_t>(mirror.indices().begin(), mirror.indices().end()));
  const cuda::DeviceKVCache& cache = dev.cache();
  const auto keys = download<uint8_t>(cache.keys(0), mirror.page_pool_bytes());
  const auto mins = download<uint8_t>(cache.key_min(0), mirror.bounds_bytes());
  const auto maxs = download<uint8_t>(cache.key_max(0), mirror.bounds_bytes());
  EXPECT_EQ(0, memcmp(keys.data(), mirror.keys_data(), keys.size()));
  EXPECT_EQ(0, memcmp(mins.data(), mirror.key_min_data(), mins.size()));
  EXPECT_EQ(0, memcmp(maxs.data(), mirror.key_max_data(), maxs.size()));
  const size_t heads = static_cast<size_t>(cfg.max_pages) * cfg.num_kv_heads;
  const auto b8 = download<int8_t>(cache.bounds8(0), heads * 2 * cfg.head_dim);
  const auto scale = download<float>(cache.bound_scale(0), heads);
  EXPECT_EQ(0, memcmp(b8.data(), mirror.bounds8_data(), b8.size()));
  EXPECT_EQ(0, memcmp(scale.data(), mirror.bound_scale_data(), scale.size() * 4));
  // The 8-bit bounds are conservative.
  for (int p = 0; p < mirror.num_pages(seq); ++p)
    for (int h = 0; h < cfg.num_kv_heads; ++h)
      for (int d = 0; d < cfg.head_dim; ++d) {
        const int phys = mirror.page_id(seq, p);
        const double s8 = mirror.bound8_scale(phys, h);
        ASSERT_LE(mirror.bound8_min(phys, h, d) * s8, mirror.key_min(phys, h, d));
        ASSERT_GE(mirror.bound8_max(phys, h, d) * s8, mirror.key_max(phys, h, d));
      }
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, GpuKernelTest,
    ::testing::Values(KernelCase{1, 16, 64, 4, 4, 2, DType::bf16}, KernelCase{17, 16, 128, 8, 2, 3, DType::bf16},
                      KernelCase{127, 32, 64, 8, 1, 5, DType::f16}, KernelCase{129, 64, 128, 4, 2, 16, DType::bf16},
                      KernelCase{1000, 16, 128, 32, 8, 16, DType::bf16}, KernelCase{3000, 16, 64, 16, 2, 32, DType::f16}),
    [](const auto& info) {
      std::ostringstream os;
      os << info.param;
      return os.str();
    });

// Exact ties: pages with identical keys score identically, and the lower page index must win.
TEST(GpuSelect, ExactTiesGoToTheLowerPage) {
  LOSA_REQUIRE_GPU();
  const int P = 16, D = 64, Hk = 2, Hq = 4, B = 4, L = 700 * P + 5;
  PagedKVConfig cfg;
  cfg.num_kv_heads = Hk;
  cfg.head_dim = D;
  cfg.page_size = P;
  cfg.max_pages = 720;
  cfg.page_order_seed = 9;
  PagedKVCache cache(cfg);
  cache.add_sequence();
  // Every page is one of three key patterns: a third of the pages tie with each other.
  const size_t row = static_cast<size_t>(Hk) * D;
  const auto patterns = test::rounded(test::random_vector(3 * P * row, 41), cfg.dtype);
  std::vector<float> keys(static_cast<size_t>(L) * row), values = test::rounded(test::random_vector(keys.size(), 42), cfg.dtype);
  for (int t = 0; t < L; ++t) {
    const int pattern = (t / P) % 3;
    std::copy_n(&patterns[(pattern * P + t % P) * row], row, &keys[t * row]);
  }
  cache.append(0, keys.data(), values.data(), L);
  const BlockShape shape{B, Hq, Hk, D};
  const auto q = test::rounded(test::random_vector(static_cast<size_t>(shape.num_rows()) * D, 43), cfg.dtype);
  // Ties split among ~233 tied pages by index, at a small, a middle and a large budget.
  for (int budget_pages : {3, 100, 300}) {
    ModeConfig mode;
    mode.mode = Mode::quest;
    mode.budget_tokens = budget_pages * P;
    cuda::LayerStepRunner runner(shape, cfg, mode, cache.num_pages(0));
    cuda::DevicePagedKV dev(cfg);
    dev.upload(cache, 0);
    cuda::DeviceBuffer dq = cuda::upload_as(cfg.dtype, q), dk = cuda::upload_as(cfg.dtype, std::vector<float>(B * row, 0.5f));
    cuda::DeviceBuffer o(q.size() * 2);
    runner.run(dev, {dq.data(), dk.data(), dk.data(), o.data()});
    const StepDecisions gpu = runner.last_decisions();
    const PageSelection cpu = quest_select(cache, 0, shape, q.data(), {0, 1, 2, 3}, mode.budget_tokens, Attend::own);
    EXPECT_EQ(gpu.selection.row_pages, cpu.row_pages) << "budget " << budget_pages;
    EXPECT_EQ(gpu.selection.kv_head_pages, cpu.kv_head_pages) << "budget " << budget_pages;
  }
}

// The top-k kernel on crafted score rows against a sort by (score descending, page ascending):
// spread scores (the first pass's bin holds a few keys and is ranked), a cluster of distinct
// scores beside one outlier (past k = 1 the cluster's bin overflows: radix passes below it), ties at the boundary
// within and past a bin's ranking capacity, and all scores equal. Each row's bitmap, the
// union's page lists and counts are checked; the flags must be left zero for the next launch.
// k <= 64 goes through the small-k filter first (falling through to the radix select where more
// than 256 keys reach its floor: the tie shapes); k = 64 / 65 straddle its limit, and `keep_last`
// (QUEST: the last page always kept, never a candidate) runs through both paths.
void check_topk_on_score_shapes(int n, bool keep_last) {
  const int P = 16, D = 64, Hk = 2, rows = 6, stride = (n + 3) / 4 * 4, flag_stride = (n + 15) / 16 * 16;
  const int words = (n + 31) / 32;
  test::RandomCache rc = test::make_random_cache(n * P, Hk, D, P, DType::bf16, 17);
  cuda::DevicePagedKV dev(rc.cache.config());
  dev.upload(rc.cache, 0);
  const auto table = dev.page_table_host();
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto make_row = [&](int shape) {
    std::vector<float> r(n);
    for (int i = 0; i < n; ++i) {
      switch (shape) {
        case 0: r[i] = 10.0f + 3.0f * normal(rng); break;                                 // spread
        case 1: r[i] = i == 7 ? 1e6f : 1.0f + 1e-4f * std::abs(normal(rng)); break;       // cluster + outlier
        case 2: r[i] = static_cast<float>(i % 13); break;                                  // 13 values: ~230 ties each
        case 3: r[i] = i % 2 ? 5.0f : -5.0f; break;                                        // two values: 1500 ties each
        case 4: r[i] = 2.5f; break;                                                        // all equal
        default: r[i] = -static_cast<float>(i) * 1e-3f - 1.0f; break;                      // negative, distinct
      }
    }
    return r;
  };
  const int candidates = keep_last ? n - 1 : n;
  for (int k : {1, 5, 16, 63, 64, 65, 100, n / 2 - 1, candidates - 1}) {
    std::vector<float> scores(static_cast<size_t>(Hk) * rows * stride, 0.0f);
    std::vector<std::vector<float>> row_scores;
    for (int h = 0; h < Hk; ++h)
      for (int r = 0; r < rows; ++r) {
        row_scores.push_back(make_row((r + h) % rows));
        std::copy(row_scores.back().begin(), row_scores.back().end(), &scores[(static_cast<size_t>(h) * rows + r) * stride]);
      }
    cuda::DeviceBuffer d_scores(scores.size() * 4), flags(static_cast<size_t>(Hk) * flag_stride), ticket(Hk * 4),
        pages(static_cast<size_t>(Hk) * n * 4), phys(static_cast<size_t>(Hk) * n * 4), counts(Hk * 4),
        bits(static_cast<size_t>(Hk) * rows * words * 4);
    d_scores.upload(scores.data(), scores.size() * 4);
    flags.fill_bytes(0);
    ticket.fill_bytes(0);
    pages.fill_bytes(0xff);  // poisoned: every entry up to the count must be written
    phys.fill_bytes(0xff);
    counts.fill_bytes(0xff);
    bits.fill_bytes(0xff);
    cuda::TopKParams tp;
    tp.scores = d_scores.as<float>();
    tp.score_stride = stride;
    tp.rows_per_kv_head = rows;
    tp.group = 1;
    tp.kv = cuda::kernel_view(dev.view(), false);
    tp.k = k;
    tp.keep_last = keep_last;
    tp.union_flags = flags.as<uint8_t>();
    tp.flag_stride = flag_stride;
    tp.union_ticket = ticket.as<unsigned>();
    tp.pages = pages.as<int32_t>();
    tp.phys = phys.as<int32_t>();
    tp.counts = counts.as<int32_t>();
    tp.list_stride = n;
    tp.row_bits = bits.as<uint32_t>();
    tp.words = words;
    cuda::launch_topk(tp, Hk, 1, n, nullptr);
    cuda::synchronize(nullptr);
    const auto got_bits = download<uint32_t>(bits.data(), static_cast<size_t>(Hk) * rows * words);
    const auto got_pages = download<int32_t>(pages.data(), static_cast<size_t>(Hk) * n);
    const auto got_phys = download<int32_t>(phys.data(), static_cast<size_t>(Hk) * n);
    const auto got_counts = download<int32_t>(counts.data(), Hk);
    const auto left_flags = download<uint8_t>(flags.data(), static_cast<size_t>(Hk) * flag_stride);
    for (int h = 0; h < Hk; ++h) {
      std::vector<char> in_union(n, 0);
      for (int r = 0; r < rows; ++r) {
        const std::vector<float>& row = row_scores[h * rows + r];
        std::vector<int> order(candidates);
        for (int i = 0; i < candidates; ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
        std::vector<char> want(n, 0);
        for (int j = 0; j < std::min(k, candidates); ++j) want[order[j]] = in_union[order[j]] = 1;  // k >= candidates: all
        if (keep_last) want[n - 1] = in_union[n - 1] = 1;
        const uint32_t* row_bits = &got_bits[(static_cast<size_t>(h) * rows + r) * words];
        int wrong = 0, first_wrong = -1;
        for (int i = 0; i < n; ++i)
          if (((row_bits[i / 32] >> (i % 32)) & 1u) != static_cast<uint32_t>(want[i])) {
            if (wrong++ == 0) first_wrong = i;
          }
        // One report per row, so that a defect shows every score shape it touches.
        EXPECT_EQ(wrong, 0) << "k " << k << " keep_last " << keep_last << " head " << h << " row " << r << " (shape "
                            << (r + h) % rows << "): first wrong page " << first_wrong;
      }
      std::vector<int32_t> want_pages;
      for (int i = 0; i < n; ++i)
        if (in_union[i]) want_pages.push_back(i);
      ASSERT_EQ(got_counts[h], static_cast<int32_t>(want_pages.size())) << "k " << k << " head " << h;
      for (size_t j = 0; j < want_pages.size(); ++j) {
        ASSERT_EQ(got_pages[h * n + j], want_pages[j]) << "k " << k << " head " << h << " entry " << j;
        ASSERT_EQ(got_phys[h * n + j], table[want_pages[j]]) << "k " << k << " head " << h << " entry " << j;
      }
    }
    for (uint8_t f : left_flags) ASSERT_EQ(f, 0) << "k " << k << ": the union's flags must be cleared";
  }
}

// 10,000 pages: 40 KB of keys, under 48 KB alone but not with the kernel's own 10 KB (the launch
// once failed there). 300 pages leave five of the eight warps without keys (the filter's floor
// comes from the other three); 40 pages leave most threads without keys (a floor of 0: every
// candidate ranked), and k >= 40 takes every candidate.
TEST(GpuSelect, TopKMatchesSortOnEveryScoreShape) {
  LOSA_REQUIRE_GPU();
  for (int n : {40, 300, 3000, 10000})
    for (bool keep_last : {false, true}) {
      SCOPED_TRACE("pages " + std::to_string(n) + (keep_last ? ", keep_last" : ""));
      check_topk_on_score_shapes(n, keep_last);
      if (HasFatalFailure()) return;
    }
}

// SparseD's attention mass on tensor cores against the double-precision mass.
TEST(GpuSparsedMass, MatchesReference) {
  LOSA_REQUIRE_GPU();
  for (const KernelCase c : {KernelCase{300, 16, 128, 8, 2, 5, DType::bf16}, KernelCase{1000, 32, 64, 16, 4, 16, DType::f16},
                             KernelCase{65, 64, 64, 4, 1, 3, DType::bf16}}) {
    const BlockShape shape{c.block_size, c.num_q_heads, c.num_kv_heads, c.head_dim};
    test::RandomCache rc = test::make_random_cache(c.kv_len, c.num_kv_heads, c.head_dim, c.page_size, c.dtype, 8);
    cuda::DevicePagedKV dev(rc.cache.config());
    dev.upload(rc.cache, 0);
    const auto q = test::rounded(test::random_vector(static_cast<size_t>(shape.num_rows()) * c.head_dim, 9, 0.5f), c.dtype);
    // A plausible normaliser per row: the log of the row's total mass, plus noise.
    const float scale = shape.default_scale();
    std::vector<float> lse(shape.num_rows());
    {
      std::vector<float> po(q.size());
      std::vector<int> all(c.block_size);
      for (int t = 0; t < c.block_size; ++t) all[t] = t;
      prefix_attention(rc.cache, 0, shape, q.data(), all, select_all_pages(rc.cache.num_pages(0), c.num_kv_heads), scale,
                       po.data(), lse.data());
      const auto noise = test::random_vector(lse.size(), 10, 0.1f);
      for (size_t r = 0; r < lse.size(); ++r) lse[r] += std::abs(noise[r]);
    }
    const int n = rc.cache.num_pages(0), G = shape.group_size();
    const cuda::KVBatchView view = dev.view();
    cuda::DeviceBuffer dq = cuda::upload_as(c.dtype, q), d_lse(lse.size() * 4), mass(static_cast<size_t>(c.num_kv_heads) * G * n * 4);
    d_lse.upload(lse.data(), lse.size() * 4);
    mass.fill_bytes(0);
    cuda::SparsedMassParams mp;
    mp.kv = cuda::kernel_view(view, false);
    mp.q = cuda::TokenRows{dq.data(), static_cast<int64_t>(c.num_q_heads) * c.head_dim};
    mp.lse_full = d_lse.as<float>();
    mp.block_size = c.block_size;
    mp.num_q_heads = c.num_q_heads;
    mp.group = G;
    mp.scale_log2 = scale * 1.4426950408889634f;
    mp.mass = mass.as<float>();
    mp.mass_stride = n;
    cuda::launch_sparsed_mass(c.dtype, c.head_dim, mp, (c.block_size * G + 63) / 64, 1, n, nullptr);
    cuda::synchronize(nullptr);
    const auto got = download<float>(mass.data(), static_cast<size_t>(c.num_kv_heads) * G * n);
    const auto ref = sparsed_page_mass(rc.cache, 0, shape, q.data(), lse.data(), scale);
    double worst = 0.0;
    for (int h = 0; h < c.num_q_heads; ++h) {
      const double* r = &ref[static_cast<size_t>(h) * n];
      const double row_scale = test::max_abs(r, n) + 1e-30;
      for (int p = 0; p < n; ++p) worst = test::worst(worst, std::abs(got[static_cast<size_t>(h) * n + p] - r[p]) / row_scale);
    }
    // Scores on tensor cores in fp32 from bf16/f16 operands; exp2 of fp32: ~1e-3 of the row's scale.
    EXPECT_LT(worst, 3e-3) << c;
  }
}

}  // namespace
}  // namespace losa
