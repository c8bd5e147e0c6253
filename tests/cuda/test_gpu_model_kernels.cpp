// The forward's small kernels (src/runtime/cuda/model_kernels.hpp) against double references
// over the same inputs, at the shapes where their vectorised and scalar paths meet.
//
// q/k RMSNorm + RoPE at head dims 64 and 128 (the shipped model's and SDAR's), two sequences
// whose positions start at 3 and at 70,000 (angles far past 2 pi, where an fp32 angle would be
// off by ~4e-3 rad), GQA head counts, and V heads that must stay untouched. The norm runs in
// fp32 (a sum of D squares, ~D u relative with u = 2^-24) and the rotation in double; the bf16
// store rounds to half an ulp (at most 2^-8 relative, at the bottom of a binade). Bound:
// 2^-7 |ref| + 1e-6, one whole ulp, for values near a rounding midpoint that the fp32 error puts
// on the other side. A wrong pair, a missed norm or attention factor, or an fp32 angle is off by
// far more.
//
// RMSNorm and SwiGLU: the same bf16 output bound (their fp32 sums of <= 8,200 squares are off by
// a few percent of an ulp at worst). Greedy: the argmax exactly (ties to the lowest id, ids past the candidates
// limit ignored, masked sequences untouched) and its softmax probability within 5e-5 relative:
// each thread sums ~150 exp terms <= 1 in fp32 (~150 u) and the merge adds ~10 roundings.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "../../src/runtime/cuda/model_kernels.hpp"
#include "cuda/gpu_test_util.hpp"
#include "losa/cuda/device_buffer.hpp"
#include "losa/runtime/rope.hpp"

namespace losa::runtime::cuda {
namespace {

using losa::cuda::DeviceBuffer;

void check_qk_norm_rope(int head_dim, int num_q_heads, int num_kv_heads) {
  const int rows_per_seq = 5, S = 2, rows = S * rows_per_seq, D = head_dim;
  const int row_width = (num_q_heads + 2 * num_kv_heads) * D;
  const std::vector<int32_t> kv_len{3, 70000};
  ModelConfig config;
  config.head_dim = D;
  config.rope_theta = 1e6;
  const RopeTable rope = make_rope_table(config);
  const double eps = 1e-6;

  std::mt19937_64 rng(17 + D);
  std::uniform_real_distribution<float> d(-2.0f, 2.0f), dw(0.5f, 1.5f);
  std::vector<float> qkv(static_cast<size_t>(rows) * row_width), q_norm(D), k_norm(D);
  for (auto& v : qkv) v = round_to(DType::bf16, d(rng));
  for (auto& v : q_norm) v = round_to(DType::bf16, dw(rng));
  for (auto& v : k_norm) v = round_to(DType::bf16, dw(rng));

  DeviceBuffer qkv_dev = losa::cuda::upload_as(DType::bf16, qkv);
  const DeviceBuffer q_dev = losa::cuda::upload_as(DType::bf16, q_norm), k_dev = losa::cuda::upload_as(DType::bf16, k_norm);
  DeviceBuffer freq_dev(rope.inv_freq.size() * sizeof(double)), len_dev(S * sizeof(int32_t));
  freq_dev.upload(rope.inv_freq.data(), freq_dev.bytes());
  len_dev.upload(kv_len.data(), len_dev.bytes());
  QkNormRope p;
  p.qkv = qkv_dev.as<bf16>();
  p.q_norm = q_dev.as<bf16>();
  p.k_norm = k_dev.as<bf16>();
  p.inv_freq = freq_dev.as<double>();
  p.kv_len = len_dev.as<int32_t>();
  p.rows_per_seq = rows_per_seq;
  p.num_q_heads = num_q_heads;
  p.num_kv_heads = num_kv_heads;
  p.head_dim = D;
  p.eps = static_cast<float>(eps);
  p.attention_factor = 1.1;  // yarn's mscale; 1 for the default rope, where dropping it would pass
  launch_qk_norm_rope(p, rows, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> got = losa::cuda::download_as(DType::bf16, qkv_dev, qkv.size());

  int checked = 0;
  for (int r = 0; r < rows; ++r) {
    const int64_t position = kv_len[r / rows_per_seq] + r % rows_per_seq;
    for (int h = 0; h < num_q_heads + 2 * num_kv_heads; ++h) {
      const float* in = qkv.data() + static_cast<size_t>(r) * row_width + static_cast<size_t>(h) * D;
      const float* out = got.data() + static_cast<size_t>(r) * row_width + static_cast<size_t>(h) * D;
      if (h >= num_q_heads + num_kv_heads) {  // V: untouched
        for (int i = 0; i < D; ++i) ASSERT_EQ(out[i], in[i]) << "V head " << h << " row " << r << " i " << i;
        continue;
      }
      const std::vector<float>& w = h < num_q_heads ? q_norm : k_norm;
      double sum = 0.0;
      for (int i = 0; i < D; ++i) sum += static_cast<double>(in[i]) * in[i];
      const double inv_rms = 1.0 / std::sqrt(sum / D + eps);
      for (int i = 0; i < D / 2; ++i) {
        const double angle = static_cast<double>(position) * rope.inv_freq[i];
        const double c = std::cos(angle) * p.attention_factor, s = std::sin(angle) * p.attention_factor;
        const double a = in[i] * inv_rms * w[i], b = in[i + D / 2] * inv_rms * w[i + D / 2];
        const double ref_lo = a * c - b * s, ref_hi = b * c + a * s;
        ASSERT_NEAR(out[i], ref_lo, std::ldexp(std::fabs(ref_lo), -7) + 1e-6)
            << "D " << D << " head " << h << " row " << r << " i " << i;
        ASSERT_NEAR(out[i + D / 2], ref_hi, std::ldexp(std::fabs(ref_hi), -7) + 1e-6)
            << "D " << D << " head " << h << " row " << r << " i " << i + D / 2;
        checked += 2;
      }
    }
  }
  EXPECT_EQ(checked, rows * (num_q_heads + num_kv_heads) * D);
}

void check_rms_norm(int rows, int dim, int offset_floats) {
  std::mt19937_64 rng(dim);
  std::uniform_real_distribution<float> d(-3.0f, 3.0f), dw(0.5f, 1.5f);
  // `offset_floats` past an aligned start: a misaligned x takes the scalar path.
  std::vector<float> x(static_cast<size_t>(rows) * dim + offset_floats), w(dim);
  for (auto& v : x) v = d(rng);
  for (auto& v : w) v = round_to(DType::bf16, dw(rng));
  const DeviceBuffer x_dev = losa::cuda::upload_as(DType::f32, x), w_dev = losa::cuda::upload_as(DType::bf16, w);
  std::vector<float> poison(static_cast<size_t>(rows + 1) * dim, -77.0f);
  DeviceBuffer y_dev = losa::cuda::upload_as(DType::bf16, poison);
  const double eps = 1e-5;
  launch_rms_norm(x_dev.as<float>() + offset_floats, w_dev.as<bf16>(), rows, dim, static_cast<float>(eps),
                  y_dev.as<bf16>(), nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> y = losa::cuda::download_as(DType::bf16, y_dev, poison.size());
  for (int r = 0; r < rows; ++r) {
    const float* xr = x.data() + offset_floats + static_cast<size_t>(r) * dim;
    double sum = 0.0;
    for (int i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const double inv_rms = 1.0 / std::sqrt(sum / dim + eps);
    for (int i = 0; i < dim; ++i) {
      const double ref = xr[i] * inv_rms * w[i];
      ASSERT_NEAR(y[static_cast<size_t>(r) * dim + i], ref, std::ldexp(std::fabs(ref), -7) + 1e-6)
          << "dim " << dim << " row " << r << " i " << i;
    }
  }
  for (int i = 0; i < dim; ++i) ASSERT_EQ(y[static_cast<size_t>(rows) * dim + i], -77.0f) << "past the rows, dim " << dim;
}

void check_silu_mul(int rows, int intermediate) {
  std::mt19937_64 rng(intermediate);
  std::uniform_real_distribution<float> d(-6.0f, 6.0f);
  std::vector<float> gu(static_cast<size_t>(rows) * 2 * intermediate);
  for (auto& v : gu) v = round_to(DType::bf16, d(rng));
  const DeviceBuffer gu_dev = losa::cuda::upload_as(DType::bf16, gu);
  std::vector<float> poison(static_cast<size_t>(rows + 1) * intermediate, -77.0f);
  DeviceBuffer act_dev = losa::cuda::upload_as(DType::bf16, poison);
  launch_silu_mul(gu_dev.as<bf16>(), rows, intermediate, act_dev.as<bf16>(), nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> act = losa::cuda::download_as(DType::bf16, act_dev, poison.size());
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < intermediate; ++i) {
      const double g = gu[static_cast<size_t>(r) * 2 * intermediate + i];
      const double u = gu[static_cast<size_t>(r) * 2 * intermediate + intermediate + i];
      const double ref = g / (1.0 + std::exp(-g)) * u;
      ASSERT_NEAR(act[static_cast<size_t>(r) * intermediate + i], ref, std::ldexp(std::fabs(ref), -7) + 1e-6)
          << "intermediate " << intermediate << " row " << r << " i " << i;
    }
  for (int i = 0; i < intermediate; ++i)
    ASSERT_EQ(act[static_cast<size_t>(rows) * intermediate + i], -77.0f) << "past the rows, I " << intermediate;
}

// Two sequences of 3 rows, the second masked out; each row's maximum planted at three ids (the
// lowest must win; one in the last ids before the limit), a larger value past the candidates
// limit (ignored), and one row starting with -inf logits (masked vocabulary).
void check_greedy(int64_t vocab, int64_t limit) {
  const int rows_per_seq = 3, rows = 2 * rows_per_seq;
  std::mt19937_64 rng(vocab);
  std::uniform_real_distribution<float> d(-4.0f, 4.0f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (auto& v : logits) v = d(rng);
  std::vector<int32_t> planted(rows);
  for (int r = 0; r < rows; ++r) {
    float* row = logits.data() + static_cast<size_t>(r) * vocab;
    planted[r] = static_cast<int32_t>((r * 7919 + 13) % (limit / 2));
    row[planted[r]] = 6.0f;
    row[planted[r] + limit / 3] = 6.0f;  // a tie, higher id
    row[limit - 1] = 6.0f;               // a tie in the last ids (the float4 path's scalar tail)
    row[vocab - 1] = 50.0f;              // past the limit
    if (r == 1)                          // masked logits first in their threads: exp(-inf - -inf)
      for (int i = 0; i < 8 && i < planted[r]; ++i) row[i] = -INFINITY;
  }
  const DeviceBuffer logits_dev = losa::cuda::upload_as(DType::f32, logits);
  const std::vector<uint8_t> mask{1, 0};
  DeviceBuffer mask_dev(2), limit_dev(8), tokens_dev(rows * 4), conf_dev(rows * 4);
  mask_dev.upload(mask.data(), 2);
  limit_dev.upload(&limit, 8);
  const std::vector<int32_t> token_poison(rows, -7);
  const std::vector<float> conf_poison(rows, -1.0f);
  tokens_dev.upload(token_poison.data(), rows * 4);
  conf_dev.upload(conf_poison.data(), rows * 4);
  launch_greedy(logits_dev.as<float>(), rows, vocab, limit_dev.as<int64_t>(), mask_dev.as<uint8_t>(), rows_per_seq,
                tokens_dev.as<int32_t>(), conf_dev.as<float>(), nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<int32_t> tokens(rows);
  std::vector<float> conf(rows);
  tokens_dev.download(tokens.data(), rows * 4);
  conf_dev.download(conf.data(), rows * 4);
  for (int r = 0; r < rows; ++r) {
    if (!mask[r / rows_per_seq]) {
      EXPECT_EQ(tokens[r], -7) << "masked row " << r;
      EXPECT_EQ(conf[r], -1.0f) << "masked row " << r;
      continue;
    }
    const float* row = logits.data() + static_cast<size_t>(r) * vocab;
    double sum = 0.0;
    for (int64_t i = 0; i < limit; ++i) sum += std::exp(static_cast<double>(row[i]) - 6.0);
    ASSERT_TRUE(std::isfinite(conf[r])) << "vocab " << vocab << " row " << r;
    EXPECT_EQ(tokens[r], planted[r]) << "vocab " << vocab << " row " << r;
    EXPECT_NEAR(conf[r], 1.0 / sum, 5e-5 / sum) << "vocab " << vocab << " row " << r;
  }
}

TEST(GpuModelKernels, RmsNormMatchesDoubleReference) {
  LOSA_REQUIRE_GPU();
  check_rms_norm(64, 4096, 0);  // SDAR-8B's hidden: four float4 a thread
  check_rms_norm(3, 5120, 0);   // eight a thread, some threads short
  check_rms_norm(3, 8200, 0);   // past 8,192: the scalar loop
  check_rms_norm(3, 1024, 1);   // x misaligned: the scalar loop
  check_rms_norm(5, 30, 0);     // dim % 4 != 0
}

TEST(GpuModelKernels, SiluMulMatchesDoubleReference) {
  LOSA_REQUIRE_GPU();
  check_silu_mul(64, 12288);  // SDAR-8B's intermediate
  check_silu_mul(3, 1032);    // a CTA partly past the row
  check_silu_mul(3, 100);     // I % 8 != 0: the scalar loop
}

TEST(GpuModelKernels, GreedyPicksTheLowestArgmaxWithItsProbability) {
  LOSA_REQUIRE_GPU();
  check_greedy(151936, 151936 - 5);  // SDAR's vocabulary, a limit that is not a multiple of 4
  check_greedy(1003, 1000);          // vocab % 4 != 0: the scalar loop
  check_greedy(512, 512 - 1);
}

TEST(GpuModelKernels, QkNormRopeMatchesDoubleReference) {
  LOSA_REQUIRE_GPU();
  check_qk_norm_rope(64, 4, 2);     // the shipped model's shape
  check_qk_norm_rope(128, 32, 8);   // SDAR-8B's: 40 normed heads, five CTAs of 8 warps a row
  check_qk_norm_rope(128, 12, 1);   // 13 normed heads: a CTA with idle warps
}

}  // namespace
}  // namespace losa::runtime::cuda
