// The CUDA model backend against the CPU reference on the tiny SDAR checkpoint: the forward
// (chunked prefill, denoising steps, commits) step by step; every attention mode with the CPU
// replaying the GPU's choices; graph replay equal to plain launches; a batch equal to its
// sequences decoded alone; bad requests refused.
//
// Tolerance: the GPU runs bf16 GEMM operands (normed activations, q/k/v, attention output, MLP
// activations: four roundings to 8 mantissa bits per layer) with fp32 accumulation and an fp32
// residual stream; the CPU reference runs fp32 activations with double accumulation over the same
// bf16 weights and bf16 K/V. Each rounding adds ~2^-9 relative; over 2 layers and the lm_head the
// logits land ~1e-2 apart, so 4e-2 relative L2 per row is the bound, and the argmax must agree
// wherever the reference's top two are apart by more than that.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "cuda/gpu_test_util.hpp"
#include "losa/errors.hpp"
#include "losa/runtime/backend.hpp"
#include "losa/runtime/cuda_backend.hpp"
#include "losa/runtime/decoder.hpp"
#include "runtime/fixture.hpp"

namespace losa::runtime {
namespace {

constexpr double kTolRow = 4e-2;

const Weights& tiny() {
  static const Weights w = load_checkpoint(test::tiny_model("bf16-sharded"));
  return w;
}

std::vector<int32_t> random_tokens(int n, uint64_t seed, int vocab) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(2, vocab - 2);  // not eos (1), not the mask (vocab - 1)
  std::vector<int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

ForwardOptions options_for(Mode mode, int block, bool record, bool complement = false) {
  ForwardOptions o;
  o.mode.losa_complement = complement;
  o.block_size = block;
  o.mode.mode = mode;
  o.mode.budget_tokens = 32;  // two pages per row plus the last
  o.mode.steps_per_block = block;
  o.mode.sparsed_skip = 0.5;
  o.mode.sparsed_select = 0.3;
  o.mode.active_rule = ActiveRule::top_k;
  o.mode.k_active = 2;
  o.page_size = 16;
  o.kv_dtype = DType::bf16;
  o.prefill_chunk = 3 * block;  // several chunks per prompt
  o.record_decisions = record;
  return o;
}

struct RowErrors {
  double worst = 0.0;
  int argmax_checked = 0;
};

/// Compares the logits rows of the sequences that took part.
RowErrors compare_logits(const float* gpu, const float* cpu, const std::vector<uint8_t>& took_part, int B, int64_t V,
                         const std::string& where) {
  RowErrors e;
  for (size_t s = 0; s < took_part.size(); ++s) {
    if (!took_part[s]) continue;
    for (int i = 0; i < B; ++i) {
      const float* g = gpu + (s * B + i) * V;
      const float* c = cpu + (s * B + i) * V;
      const double err = test::rel_l2(g, c, static_cast<size_t>(V));
      e.worst = test::worst(e.worst, err);
      EXPECT_LT(err, kTolRow) << where << " seq " << s << " row " << i;
      std::vector<float> sorted(c, c + V);
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
      double norm = 0.0;
      for (int64_t v = 0; v < V; ++v) norm += static_cast<double>(c[v]) * c[v];
      if (sorted[0] - sorted[1] > 4 * kTolRow * std::sqrt(norm / V)) {
        ++e.argmax_checked;
        EXPECT_EQ(std::max_element(g, g + V) - g, std::max_element(c, c + V) - c) << where << " seq " << s << " row " << i;
      }
    }
  }
  return e;
}

/// Both backends in lockstep over a few blocks: the GPU decides (and records its choices), the
/// CPU replays them; the block follows the GPU's greedy proposals (sequential unmasking).
void lockstep(Mode mode, int B, const std::vector<int>& prompt_lengths, bool complement = false) {
  const Weights& w = tiny();
  const int64_t V = w.config.vocab_size;
  const int S = static_cast<int>(prompt_lengths.size()), mask_id = w.config.mask_token_id, blocks = 3;
  auto gpu = make_cuda_backend(w, CudaBackendOptions{false});
  auto cpu = make_cpu_backend(w, 2);
  std::vector<std::vector<int32_t>> prefill(S);
  std::vector<int64_t> capacity(S);
  for (int s = 0; s < S; ++s) {
    prefill[s] = random_tokens(prompt_lengths[s] / B * B, 100 + s, static_cast<int>(V));
    capacity[s] = static_cast<int64_t>(prefill[s].size()) + int64_t{blocks} * B;
  }
  gpu->start(prefill, capacity, options_for(mode, B, true, complement));
  cpu->start(prefill, capacity, options_for(mode, B, false, complement));
  const Sampler greedy(SamplerParams{});
  std::vector<SampleKey> keys(S);
  std::vector<TokenProposal> gp(static_cast<size_t>(S) * B), cp(gp.size());
  std::vector<uint8_t> take(S, 1);
  take.back() = S > 1 ? 0 : 1;  // the last sequence sits the second block out (batch masks)
  RowErrors worst;
  for (int b = 0; b < blocks; ++b) {
    gpu->begin_block();
    cpu->begin_block();
    std::vector<int32_t> block(static_cast<size_t>(S) * B, mask_id);
    const uint8_t* part = b == 1 ? take.data() : nullptr;
    for (int step = 0; step < std::min(B, 3); ++step) {
      const std::string where = std::string(mode_name(mode)) + " B=" + std::to_string(B) + " block " +
                                std::to_string(b) + " step " + std::to_string(step);
      const ForwardReport gr = gpu->denoise(block.data(), part, greedy, keys.data(), gp.data());
      cpu->replay_next(gpu->last_decisions());
      const ForwardReport cr = cpu->denoise(block.data(), part, greedy, keys.data(), cp.data());
      ASSERT_EQ(gr.took_part, cr.took_part);
      const RowErrors e = compare_logits(gpu->last_logits(), cpu->last_logits(), gr.took_part, B, V, where);
      worst.worst = test::worst(worst.worst, e.worst);
      worst.argmax_checked += e.argmax_checked;
      EXPECT_EQ(gr.layer_kv_bytes, cr.layer_kv_bytes) << where;
      EXPECT_EQ(gr.sequence_active_tokens(), cr.sequence_active_tokens()) << where;
      for (int s = 0; s < S; ++s)
        if (gr.took_part[s]) block[static_cast<size_t>(s) * B + step] = gp[static_cast<size_t>(s) * B + step].token;
    }
    for (auto& t : block)
      if (t == mask_id) t = 7;
    gpu->commit(block.data(), part);
    cpu->replay_next(gpu->last_decisions());
    cpu->commit(block.data(), part);
    for (int s = 0; s < S; ++s) EXPECT_EQ(gpu->kv_length(s), cpu->kv_length(s)) << "seq " << s;
  }
  std::printf("[ %s B=%d ] worst logits row rel err %.2e, argmax checked on %d rows\n", mode_name(mode), B, worst.worst,
              worst.argmax_checked);
  EXPECT_GT(worst.argmax_checked, 0);
}

TEST(GpuRuntime, DenseMatchesCpu) {
  LOSA_REQUIRE_GPU();
  lockstep(Mode::dense, 4, {37, 10});
  lockstep(Mode::dense, 16, {70, 3});
}
TEST(GpuRuntime, QuestMatchesCpuReplayingItsChoices) {
  LOSA_REQUIRE_GPU();
  lockstep(Mode::quest, 4, {200, 90});
}
TEST(GpuRuntime, LosaMatchesCpuReplayingItsChoices) {
  LOSA_REQUIRE_GPU();
  lockstep(Mode::losa, 4, {200, 90});
  lockstep(Mode::losa, 16, {230, 40});
}
// The complement through the runtime: the anchors copied at step 0 (a sequence sitting a block
// out keeps its own), the second pass and the doubled page reads in the report.
TEST(GpuRuntime, LosaComplementMatchesCpuReplayingItsChoices) {
  LOSA_REQUIRE_GPU();
  lockstep(Mode::losa, 4, {200, 90}, true);
  lockstep(Mode::losa, 16, {230, 40}, true);
}
TEST(GpuRuntime, SparsedMatchesCpuReplayingItsChoices) {
  LOSA_REQUIRE_GPU();
  lockstep(Mode::sparsed, 8, {200, 60});
}

DecodeOptions decode_options(Mode mode, int B) {
  DecodeOptions o;
  o.block_size = B;
  o.steps = std::min(B, 4);
  o.strategy = Strategy::low_confidence_dynamic;
  o.threshold = 0.5;
  o.max_new_tokens = 3 * B + 1;
  o.forward = options_for(mode, B, false);
  return o;
}

// A whole decode with every step a graph replay gives what plain launches give.
TEST(GpuRuntime, GraphReplayEqualsPlainLaunches) {
  LOSA_REQUIRE_GPU();
  const std::vector<std::vector<int32_t>> prompts{random_tokens(150, 5, 512), random_tokens(41, 6, 512)};
  for (Mode mode : {Mode::dense, Mode::losa, Mode::quest}) {
    auto graphs = make_cuda_backend(tiny(), CudaBackendOptions{true});
    auto plain = make_cuda_backend(tiny(), CudaBackendOptions{false});
    const DecodeResult a = decode(*graphs, prompts, decode_options(mode, 4));
    const DecodeResult b = decode(*plain, prompts, decode_options(mode, 4));
    for (size_t s = 0; s < prompts.size(); ++s)
      EXPECT_EQ(a.sequences[s].generated, b.sequences[s].generated) << mode_name(mode) << " seq " << s;
  }
}

// Sequences decoded together give what each gives alone (the masks keep them apart).
TEST(GpuRuntime, BatchEqualsSequencesAlone) {
  LOSA_REQUIRE_GPU();
  const std::vector<std::vector<int32_t>> prompts{random_tokens(150, 8, 512), random_tokens(9, 9, 512),
                                                  random_tokens(64, 10, 512)};
  for (Mode mode : {Mode::dense, Mode::losa}) {
    auto backend = make_cuda_backend(tiny());
    const DecodeResult together = decode(*backend, prompts, decode_options(mode, 4));
    for (size_t s = 0; s < prompts.size(); ++s) {
      auto alone_backend = make_cuda_backend(tiny());
      DecodeOptions o = decode_options(mode, 4);
      o.sequence_ids = {static_cast<int64_t>(s)};
      const DecodeResult alone = decode(*alone_backend, {prompts[s]}, o);
      EXPECT_EQ(together.sequences[s].generated, alone.sequences[0].generated) << mode_name(mode) << " seq " << s;
    }
  }
}

// The benchmark's stage hook: each step's marks run from "embed" to "done" with every layer's
// groups between (the attention's own stages named inside), and a decode whose graphs hold the
// marks' event nodes gives what one without them gives.
TEST(GpuRuntime, StageHookMarksEveryKernelGroup) {
  LOSA_REQUIRE_GPU();
  const std::vector<std::vector<int32_t>> prompts{random_tokens(150, 11, 512), random_tokens(41, 12, 512)};
  std::vector<std::string> names;
  std::vector<cudaEvent_t> events;
  CudaBackendOptions marked;
  marked.stage_hook = [&](const char* stage, cudaStream_t stream) {
    names.emplace_back(stage);
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    EXPECT_EQ(cudaStreamIsCapturing(stream, &capturing), cudaSuccess);
    if (capturing != cudaStreamCaptureStatusActive) return;  // the prefill's marks: plain launches
    events.emplace_back();
    EXPECT_EQ(cudaEventCreate(&events.back()), cudaSuccess);
    EXPECT_EQ(cudaEventRecordWithFlags(events.back(), stream, cudaEventRecordExternal), cudaSuccess);
  };
  auto with_marks = make_cuda_backend(tiny(), marked);
  auto without = make_cuda_backend(tiny());
  const DecodeResult a = decode(*with_marks, prompts, decode_options(Mode::losa, 4));
  const DecodeResult b = decode(*without, prompts, decode_options(Mode::losa, 4));
  for (size_t s = 0; s < prompts.size(); ++s) EXPECT_EQ(a.sequences[s].generated, b.sequences[s].generated) << "seq " << s;
  for (cudaEvent_t e : events) cudaEventDestroy(e);

  const int L = tiny().config.num_hidden_layers;
  int steps = 0, topk = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != "embed") continue;
    size_t j = i + 1;
    int qkv = 0, attention = 0, down = 0;
    for (; j < names.size() && names[j] != "done" && names[j] != "embed"; ++j) {
      qkv += names[j] == "qkv";
      attention += names[j] == "attention";
      down += names[j] == "down";
      topk += names[j] == "attention.topk";
    }
    ASSERT_LT(j, names.size()) << "a step's marks end without \"done\"";
    ASSERT_EQ(names[j], "done") << "mark " << j;
    EXPECT_EQ(qkv, L);
    EXPECT_EQ(attention, L);
    EXPECT_EQ(down, L);
    ++steps;
  }
  EXPECT_GE(steps, 2);  // step 0 and a later step (and a commit) captured
  EXPECT_GE(topk, L);   // LoSA's later steps select pages in every layer
  EXPECT_FALSE(events.empty());
}

TEST(GpuRuntime, BadRequestsAreRefused) {
  LOSA_REQUIRE_GPU();
  auto backend = make_cuda_backend(tiny());
  ForwardOptions o = options_for(Mode::dense, 4, false);
  o.kv_dtype = DType::f32;
  try {
    backend->start({{}}, {8}, o);
    ADD_FAILURE() << "f32 K/V accepted";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), "kv_dtype");
  }
  o = options_for(Mode::dense, 4, false);
  try {  // a batch far beyond the GPU's memory is refused before anything is allocated
    backend->start({{}}, {int64_t{1} << 30}, o);
    ADD_FAILURE() << "a 2^30-token batch accepted";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), "capacity_tokens") << e.what();
    EXPECT_NE(std::string(e.what()).find("GPU memory"), std::string::npos) << e.what();
  }
  EXPECT_THROW(backend->replay_next({}), ArgumentError);
}

}  // namespace
}  // namespace losa::runtime
