// Decoding on the CPU backend: greedy dense generations equal the Python reference of SDAR's
// algorithm token for token; stop ids; sampling keyed per prompt; every attention mode.
#include <gtest/gtest.h>

#include <algorithm>

#include "losa/errors.hpp"
#include "losa/runtime/decoder.hpp"
#include "runtime/fixture.hpp"

namespace losa::runtime {
namespace {

const Weights& tiny() {
  static const Weights w = load_checkpoint(test::tiny_model("bf16-sharded"));
  return w;
}

// Reference conditions: dense attention over full-precision K/V, greedy.
DecodeOptions reference_options(const nlohmann::json& c) {
  DecodeOptions o;
  o.block_size = c["block_size"];
  o.steps = c["steps"];
  o.strategy = parse_strategy(c["strategy"]);
  o.threshold = c["threshold"];
  o.max_new_tokens = c["max_new_tokens"];
  o.forward.kv_dtype = DType::f32;
  o.forward.prefill_chunk = 8;
  return o;
}

std::vector<std::vector<int32_t>> generated(const DecodeResult& r) {
  std::vector<std::vector<int32_t>> g;
  for (const auto& s : r.sequences) g.push_back(s.generated);
  return g;
}

// Every reference case (strategy x B in {4, 16} x steps), its prompts decoded as one batch.
TEST(RuntimeDecode, GreedyDenseMatchesReference) {
  int cases = 0;
  for (const auto& c : test::tiny_reference()["generate"]) {
    auto backend = make_cpu_backend(tiny(), 1);
    const auto prompts = c["prompts"].get<std::vector<std::vector<int32_t>>>();
    const DecodeResult r = decode(*backend, prompts, reference_options(c));
    EXPECT_EQ(generated(r), c["generated"].get<std::vector<std::vector<int32_t>>>())
        << "B=" << c["block_size"] << " steps=" << c["steps"] << " " << c["strategy"];
    for (const auto& s : r.sequences)
      for (const auto& b : s.blocks) {
        EXPECT_GE(b.steps, 1);
        EXPECT_LE(b.steps, r.steps);  // every step unmasks at least one token
      }
    ++cases;
  }
  EXPECT_EQ(cases, 12);
}

// A user stop id ends a sequence after the block where it appears; the output ends at it.
TEST(RuntimeDecode, StopIdEndsTheSequence) {
  const auto& c = test::tiny_reference()["generate"][0];
  const auto prompts = c["prompts"].get<std::vector<std::vector<int32_t>>>();
  const auto full = c["generated"].get<std::vector<std::vector<int32_t>>>();
  DecodeOptions o = reference_options(c);
  const int32_t stop = full[0][5];
  o.stop_ids = {stop};
  auto backend = make_cpu_backend(tiny(), 1);
  const DecodeResult r = decode(*backend, prompts, o);
  for (size_t s = 0; s < prompts.size(); ++s) {
    auto end = std::find(full[s].begin(), full[s].end(), stop);
    const bool stops = end != full[s].end();
    const std::vector<int32_t> expected(full[s].begin(), stops ? end + 1 : full[s].end());
    EXPECT_EQ(r.sequences[s].generated, expected) << "sequence " << s;
    EXPECT_EQ(r.sequences[s].stopped, stops);
  }
  EXPECT_LT(r.sequences[0].blocks.size(), 6u);  // it stopped early, not after all 6 blocks
}

// Sampling draws depend on (seed, sequence id, block, step, position) only: a prompt decodes the
// same alone, first or second in a batch, when it keeps its sequence id.
TEST(RuntimeDecode, SamplingIsKeyedPerPrompt) {
  const auto& c = test::tiny_reference()["generate"][2];
  const auto prompts = c["prompts"].get<std::vector<std::vector<int32_t>>>();
  DecodeOptions o = reference_options(c);
  o.sampling = {0.8, 50, 0.9};
  o.seed = 7;
  auto backend = make_cpu_backend(tiny(), 1);
  o.sequence_ids = {0, 1};
  const auto ab = generated(decode(*backend, {prompts[0], prompts[1]}, o));
  o.sequence_ids = {1, 0};
  const auto ba = generated(decode(*backend, {prompts[1], prompts[0]}, o));
  o.sequence_ids = {1};
  const auto b_alone = generated(decode(*backend, {prompts[1]}, o));
  EXPECT_EQ(ab[0], ba[1]);
  EXPECT_EQ(ab[1], ba[0]);
  EXPECT_EQ(ab[1], b_alone[0]);
  o.seed = 8;
  o.sequence_ids = {0, 1};
  EXPECT_NE(generated(decode(*backend, {prompts[0], prompts[1]}, o)), ab);  // the seed matters
}

// Modes whose options make them exact give dense's tokens: QUEST whose budget covers the prefix,
// LoSA recomputing every changed token (k_active = B) over every page, SparseD keeping all pages.
TEST(RuntimeDecode, ExactSettingsOfEveryModeEqualDense) {
  for (int idx : {2, 8}) {  // B = 4 and B = 16, low_confidence_dynamic
    const auto& c = test::tiny_reference()["generate"][idx];
    const auto prompts = c["prompts"].get<std::vector<std::vector<int32_t>>>();
    const auto expected = c["generated"].get<std::vector<std::vector<int32_t>>>();
    std::vector<ModeConfig> modes(3);
    modes[0].mode = Mode::quest;
    modes[0].budget_tokens = 1024;
    modes[1].mode = Mode::losa;
    modes[1].budget_tokens = 1024;
    modes[1].active_rule = ActiveRule::top_k;
    modes[1].k_active = c["block_size"];
    modes[2].mode = Mode::sparsed;
    modes[2].sparsed_select = 1.0;
    for (const ModeConfig& m : modes) {
      DecodeOptions o = reference_options(c);
      o.forward.mode = m;
      auto backend = make_cpu_backend(tiny(), 1);
      EXPECT_EQ(generated(decode(*backend, prompts, o)), expected) << mode_name(m.mode) << " B=" << c["block_size"];
    }
  }
}

// Sparse settings on a longer prompt (10 pages): every mode decodes, reports a density below
// one where it skips pages, and LoSA recomputes fewer than B tokens on later steps.
TEST(RuntimeDecode, SparseModesDecodeWithTheirInvariants) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < 165; ++i) prompt.push_back(3 + (i * 37 + i / 7) % 500);
  struct Case {
    ModeConfig mode;
    bool sparse;
  };
  std::vector<Case> cases(5);
  cases[0].mode.mode = Mode::dense;
  cases[1].mode.mode = Mode::quest;
  cases[1].mode.budget_tokens = 32;
  cases[2].mode.mode = Mode::losa;
  cases[2].mode.budget_tokens = 32;
  cases[2].mode.tau = 0.5;
  cases[3].mode.mode = Mode::losa;
  cases[3].mode.budget_tokens = 16;
  cases[3].mode.active_rule = ActiveRule::top_k;
  cases[3].mode.k_active = 2;
  cases[4].mode.mode = Mode::sparsed;
  cases[4].mode.sparsed_skip = 0.25;
  cases[4].mode.sparsed_select = 0.3;
  for (const Case& c : cases) {
    DecodeOptions o;
    o.block_size = 16;
    o.steps = 4;
    o.max_new_tokens = 32;
    o.use_model_eos = false;
    o.forward.mode = c.mode;
    auto backend = make_cpu_backend(tiny(), 1);
    const DecodeResult r = decode(*backend, {prompt}, o);
    const SequenceResult& s = r.sequences[0];
    ASSERT_EQ(s.generated.size(), 32u) << mode_name(c.mode.mode);
    for (int32_t t : s.generated) EXPECT_TRUE(t >= 0 && t < tiny().config.vocab_size);
    double min_density = 1.0, min_active = 16.0;
    for (const auto& b : s.blocks) {
      EXPECT_GT(b.density, 0.0);
      EXPECT_LE(b.density, 1.0);
      min_density = std::min(min_density, b.density);
      min_active = std::min(min_active, b.active_tokens);
      // Per layer: one value each, in range, and the block's values are their means.
      const size_t L = static_cast<size_t>(tiny().config.num_hidden_layers);
      ASSERT_EQ(b.layer_density.size(), L);
      ASSERT_EQ(b.layer_active_tokens.size(), L);
      double density_sum = 0.0, active_sum = 0.0;
      for (size_t l = 0; l < L; ++l) {
        EXPECT_GT(b.layer_density[l], 0.0);
        EXPECT_LE(b.layer_density[l], 1.0);
        EXPECT_GE(b.layer_active_tokens[l], 0.0);
        EXPECT_LE(b.layer_active_tokens[l], 16.0);
        density_sum += b.layer_density[l];
        active_sum += b.layer_active_tokens[l];
      }
      EXPECT_NEAR(density_sum / L, b.density, 1e-12);
      EXPECT_NEAR(active_sum / L, b.active_tokens, 1e-12);
    }
    if (c.mode.mode == Mode::dense) EXPECT_EQ(min_density, 1.0);
    if (c.mode.mode != Mode::dense) EXPECT_LT(min_density, 1.0) << mode_name(c.mode.mode);
    if (c.mode.mode == Mode::losa) EXPECT_LT(min_active, 16.0);
  }
}

// A backend that counts commit forwards, to see when the decoder reports a block.
class CommitCounter : public ModelBackend {
 public:
  explicit CommitCounter(std::unique_ptr<ModelBackend> inner) : inner_(std::move(inner)) {}
  int commits = 0;
  const ModelConfig& config() const override { return inner_->config(); }
  void start(const std::vector<std::vector<int32_t>>& p, const std::vector<int64_t>& c,
             const ForwardOptions& o) override { inner_->start(p, c, o); }
  int num_sequences() const override { return inner_->num_sequences(); }
  int64_t kv_length(int s) const override { return inner_->kv_length(s); }
  void begin_block() override { inner_->begin_block(); }
  void set_attention_mode(const ModeConfig& m) override { inner_->set_attention_mode(m); }
  ForwardReport denoise(const int32_t* b, const uint8_t* t, const Sampler& s, const SampleKey* k,
                        TokenProposal* p) override { return inner_->denoise(b, t, s, k, p); }
  ForwardReport commit(const int32_t* b, const uint8_t* t) override {
    ++commits;
    return inner_->commit(b, t);
  }
  const float* last_logits() const override { return inner_->last_logits(); }
  const ForwardDecisions& last_decisions() const override { return inner_->last_decisions(); }
  void replay_next(ForwardDecisions d) override { inner_->replay_next(std::move(d)); }

 private:
  std::unique_ptr<ModelBackend> inner_;
};

// Each sequence's blocks reach the observer in order, as soon as they are final (before the
// round's commit, so before any later block is computed), and joined they are its `generated`.
TEST(RuntimeDecode, BlockObserverSeesEachBlockWhenItIsFinal) {
  for (int idx : {0, 8}) {  // three prompts each, B = 4 and B = 16
    const auto& c = test::tiny_reference()["generate"][idx];
    const auto prompts = c["prompts"].get<std::vector<std::vector<int32_t>>>();
    CommitCounter backend(make_cpu_backend(tiny(), 1));
    std::vector<std::vector<int32_t>> joined(prompts.size());
    std::vector<int> last_seen(prompts.size(), -1), last_flags(prompts.size(), 0);
    const DecodeResult r = decode(backend, prompts, reference_options(c), {}, [&](const FinalBlock& b) {
      EXPECT_EQ(b.block, last_seen[b.sequence] + 1);
      EXPECT_EQ(backend.commits, b.block) << "block " << b.block << " reported after its commit";
      EXPECT_FALSE(b.tokens.empty());
      EXPECT_EQ(last_flags[b.sequence], 0) << "a block after the last one";
      last_seen[b.sequence] = static_cast<int>(b.block);
      last_flags[b.sequence] += b.last;
      joined[b.sequence].insert(joined[b.sequence].end(), b.tokens.begin(), b.tokens.end());
      return true;
    });
    for (size_t s = 0; s < prompts.size(); ++s) {
      EXPECT_EQ(joined[s], r.sequences[s].generated) << "sequence " << s;
      EXPECT_EQ(last_flags[s], 1) << "sequence " << s;
      EXPECT_EQ(last_seen[s] + 1, static_cast<int>(r.sequences[s].blocks.size()));
      EXPECT_FALSE(r.sequences[s].halted);
    }
    EXPECT_EQ(generated(r), c["generated"].get<std::vector<std::vector<int32_t>>>());
  }
}

// An observer that returns false ends its sequence after that block (a stop string, in the CLI);
// the others decode on as if it were not there.
TEST(RuntimeDecode, BlockObserverCanEndASequence) {
  const auto& c = test::tiny_reference()["generate"][0];
  const auto prompts = c["prompts"].get<std::vector<std::vector<int32_t>>>();
  const auto full = c["generated"].get<std::vector<std::vector<int32_t>>>();
  auto backend = make_cpu_backend(tiny(), 1);
  int reports_after_halt = 0;
  const DecodeResult r = decode(*backend, prompts, reference_options(c), {}, [&](const FinalBlock& b) {
    reports_after_halt += b.sequence == 1 && b.block > 1;
    return !(b.sequence == 1 && b.block == 1);
  });
  EXPECT_EQ(reports_after_halt, 0);
  EXPECT_TRUE(r.sequences[1].halted);
  EXPECT_FALSE(r.sequences[1].stopped);
  ASSERT_EQ(r.sequences[1].blocks.size(), 2u);
  const size_t kept = r.sequences[1].generated.size();
  EXPECT_LT(kept, full[1].size());
  EXPECT_EQ(r.sequences[1].generated, std::vector<int32_t>(full[1].begin(), full[1].begin() + kept));
  for (size_t s : {size_t{0}, size_t{2}}) {
    EXPECT_EQ(r.sequences[s].generated, full[s]) << "sequence " << s;
    EXPECT_FALSE(r.sequences[s].halted);
  }
}

TEST(RuntimeDecode, BadOptionsNameTheField) {
  auto backend = make_cpu_backend(tiny(), 1);
  auto expect_error = [&](DecodeOptions o, const std::string& field,
                          std::vector<std::vector<int32_t>> prompts = {{5, 6, 7}}) {
    try {
      decode(*backend, prompts, o);
      ADD_FAILURE() << "no error for " << field;
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.argument(), field) << e.what();
    }
  };
  DecodeOptions o;
  o.steps = 5;  // > block size 4
  expect_error(o, "steps");
  o = {};
  o.block_size = 65;
  expect_error(o, "block_size");
  o = {};
  o.max_new_tokens = 0;
  expect_error(o, "max_new_tokens");
  o = {};
  o.sampling.top_p = 0.0;
  expect_error(o, "top_p");
  o = {};
  o.forward.mode.mode = Mode::quest;
  o.forward.mode.budget_tokens = 8;
  expect_error(o, "budget_tokens");
  expect_error({}, "prompts", {{5, 600}});
  o = {};
  o.stop_ids = {-1};
  expect_error(o, "stop_ids");
  o = {};
  o.sampling.vocab_limit = tiny().config.vocab_size + 1;
  expect_error(o, "vocab_limit");
}

}  // namespace
}  // namespace losa::runtime
