// The backend interface on the CPU backend: decision capture and replay, take-part masks,
// argument checks.
#include <gtest/gtest.h>

#include "losa/errors.hpp"
#include "losa/runtime/backend.hpp"
#include "runtime/fixture.hpp"

namespace losa::runtime {
namespace {

const Weights& tiny() {
  static const Weights w = load_checkpoint(test::tiny_model("bf16-sharded"));
  return w;
}

// 96 tokens of the reference's forward input (six pages of 16).
std::vector<int32_t> prompt_of_96() {
  const auto tokens = test::tiny_reference()["forward"]["bf16-sharded"]["tokens"].get<std::vector<int32_t>>();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 96; ++i) prompt.push_back(tokens[i % 32]);
  return prompt;
}

// LoSA with the two most changed tokens active and a budget of two pages.
ModeConfig losa_top2() {
  ModeConfig losa;
  losa.mode = Mode::losa;
  losa.budget_tokens = 32;
  losa.active_rule = ActiveRule::top_k;
  losa.k_active = 2;
  return losa;
}

struct Steps {
  std::vector<std::vector<float>> logits;
  std::vector<ForwardDecisions> decisions;
};

// Two sequences (prefixes of 96 and 64 tokens, 6 and 4 pages): one block of B = 4 with three
// denoising steps that unmask one position each, then the commit and a second block.
Steps run(ModeConfig mode, const std::vector<ForwardDecisions>* replay) {
  const std::vector<int32_t> prompt = prompt_of_96();
  ForwardOptions opt;
  opt.block_size = 4;
  opt.mode = mode;
  opt.kv_dtype = DType::f32;
  opt.record_decisions = true;
  auto backend = make_cpu_backend(tiny(), 1);
  backend->start({prompt, std::vector<int32_t>(prompt.begin(), prompt.begin() + 64)}, {128, 128}, opt);
  const Sampler greedy({});
  Steps out;
  std::vector<int32_t> block(8, 511);
  std::vector<SampleKey> keys(2);
  std::vector<TokenProposal> proposals(8);
  size_t forward = 0;
  for (int b = 0; b < 2; ++b) {
    backend->begin_block();
    for (int step = 0; step < 4; ++step) {
      if (replay) backend->replay_next((*replay)[forward]);
      ++forward;
      if (step < 3) {
        backend->denoise(block.data(), nullptr, greedy, keys.data(), proposals.data());
        out.logits.emplace_back(backend->last_logits(), backend->last_logits() + 8 * 512);
        for (int s = 0; s < 2; ++s) block[s * 4 + step] = proposals[s * 4 + step].token;
      } else {
        backend->commit(block.data(), nullptr);
      }
      out.decisions.push_back(backend->last_decisions());
    }
    std::fill(block.begin(), block.end(), 511);
  }
  return out;
}

TEST(RuntimeBackend, ReplayingOwnDecisionsReproducesTheRun) {
  const Steps first = run(losa_top2(), nullptr);
  const Steps again = run(losa_top2(), &first.decisions);
  EXPECT_EQ(first.logits, again.logits);
  // The decisions are real choices: fewer tokens than the block on later steps, fewer pages.
  EXPECT_LT(first.decisions[1][0][0].tokens.size(), 4u);
  EXPECT_LT(first.decisions[1][0][0].selection.pages_loaded(), 2 * 6);
}

// Replay overrides the mode's own choices: quest replaying dense's selection computes dense.
TEST(RuntimeBackend, ReplayOverridesTheModesChoices) {
  ModeConfig dense, quest;
  quest.mode = Mode::quest;
  quest.budget_tokens = 16;
  const Steps d = run(dense, nullptr);
  const Steps q = run(quest, nullptr);
  const Steps q_as_d = run(quest, &d.decisions);
  EXPECT_NE(q.logits, d.logits);
  EXPECT_EQ(q_as_d.logits, d.logits);
}

TEST(RuntimeBackend, TakePartLeavesOtherSequencesAlone) {
  ForwardOptions opt;
  opt.block_size = 4;
  auto backend = make_cpu_backend(tiny(), 1);
  backend->start({{5, 6, 7, 8}, {9, 10, 11, 12}}, {16, 16}, opt);
  backend->begin_block();
  std::vector<int32_t> block = {511, 511, 511, 511, 511, 511, 511, 511};
  const uint8_t only_second[2] = {0, 1};
  std::vector<SampleKey> keys(2);
  std::vector<TokenProposal> proposals(8, TokenProposal{-7, -1.0f});
  const ForwardReport r = backend->denoise(block.data(), only_second, Sampler({}), keys.data(), proposals.data());
  EXPECT_EQ(proposals[0].token, -7);  // untouched
  EXPECT_GE(proposals[4].token, 0);
  EXPECT_EQ(r.took_part, (std::vector<uint8_t>{0, 1}));
  backend->commit(block.data(), only_second);
  EXPECT_EQ(backend->kv_length(0), 4);
  EXPECT_EQ(backend->kv_length(1), 8);
}

TEST(RuntimeBackend, BadArgumentsAreNamed) {
  auto backend = make_cpu_backend(tiny(), 1);
  ForwardOptions opt;
  opt.block_size = 4;
  auto expect = [](const std::function<void()>& f, const std::string& arg) {
    try {
      f();
      ADD_FAILURE() << "no error for " << arg;
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.argument(), arg) << e.what();
    }
  };
  std::vector<int32_t> block(4, 511);
  expect([&] { backend->commit(block.data(), nullptr); }, "backend");  // not started
  expect([&] { backend->start({{1, 2, 3}}, {8}, opt); }, "prefill_tokens");  // not whole blocks
  expect([&] { backend->start({{1, 2, 3, 4}}, {2}, opt); }, "capacity_tokens");
  expect([&] { backend->start({{1, 2, 3, 4}}, {int64_t{1} << 40}, opt); }, "capacity_tokens");
  opt.page_size = 24;
  expect([&] { backend->start({{1, 2, 3, 4}}, {8}, opt); }, "page_size");
  opt.page_size = 16;
  opt.prefill_chunk = 6;
  expect([&] { backend->start({{1, 2, 3, 4}}, {8}, opt); }, "prefill_chunk");
  opt.prefill_chunk = 8;
  backend->start({{1, 2, 3, 4}}, {8}, opt);
  block[1] = 512;
  expect([&] { backend->commit(block.data(), nullptr); }, "tokens");  // outside the vocabulary
  ModeConfig losa8 = losa_top2();
  losa8.bounds8 = true;
  expect([&] { backend->set_attention_mode(losa8); }, "mode.bounds8");  // the cache has no 8-bit bounds
}

// A batch started in dense mode with keep_bounds8 may switch to a mode that scores with 8-bit
// bounds, and then selects as a batch started in that mode does.
TEST(RuntimeBackend, KeepBounds8LetsAModeSwitchToThem) {
  ModeConfig losa8 = losa_top2();
  losa8.bounds8 = true;
  const std::vector<int32_t> prompt = prompt_of_96();
  auto decisions_of = [&](bool switch_later) {
    ForwardOptions opt;
    opt.block_size = 4;
    opt.kv_dtype = DType::f32;
    opt.record_decisions = true;
    if (switch_later) opt.keep_bounds8 = true;
    else opt.mode = losa8;
    auto backend = make_cpu_backend(tiny(), 1);
    backend->start({prompt}, {128}, opt);
    if (switch_later) backend->set_attention_mode(losa8);
    backend->begin_block();
    std::vector<int32_t> block(4, 511);
    std::vector<SampleKey> keys(1);
    std::vector<TokenProposal> proposals(4);
    std::vector<ForwardDecisions> out;
    for (int step = 0; step < 3; ++step) {
      backend->denoise(block.data(), nullptr, Sampler({}), keys.data(), proposals.data());
      block[step] = proposals[step].token;
      out.push_back(backend->last_decisions());
    }
    return out;
  };
  const auto started = decisions_of(false), switched = decisions_of(true);
  ASSERT_EQ(started.size(), switched.size());
  for (size_t f = 0; f < started.size(); ++f)
    for (size_t layer = 0; layer < started[f].size(); ++layer) {
      const StepDecisions &a = started[f][layer][0], &b = switched[f][layer][0];
      EXPECT_EQ(a.tokens, b.tokens) << "forward " << f << " layer " << layer;
      EXPECT_EQ(a.selection.kv_head_pages, b.selection.kv_head_pages) << "forward " << f << " layer " << layer;
      EXPECT_EQ(a.selection.row_pages, b.selection.row_pages) << "forward " << f << " layer " << layer;
    }
  // A real selection on a later step: fewer than dense's 6 pages for every KV head.
  EXPECT_LT(started[1][0][0].selection.pages_loaded(), 6 * tiny().config.num_key_value_heads);
}

}  // namespace
}  // namespace losa::runtime
