// losa eval's core on the CPU backend with a small random model: one record per task x variant
// x length, scores that agree with the generated tokens, densities that follow the modes, and
// seeds apart from the training data's.
#include <gtest/gtest.h>

#include <set>

#include "losa/errors.hpp"
#include "losa/eval/evaluate.hpp"
#include "losa/runtime/weights.hpp"

namespace losa::eval {
namespace {

runtime::ModelConfig small_config() {
  runtime::ModelConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 64;
  c.vocab_size = TaskVocab::size;
  c.max_position_embeddings = 4096;
  c.rope_theta = 1e6;
  c.block_size = 4;
  c.mask_token_id = TaskVocab::mask;
  c.eos_token_ids = {TaskVocab::eos};
  return c;
}

TEST(Evaluate, VariantsCoverTheGrid) {
  VariantGrid grid;
  grid.k_actives = {0, 2};
  grid.delta_mins = {0.01, 0.05};
  const std::vector<ModeVariant> v = make_variants(grid, 4096);
  // dense 1, quest 4, losa 4 x (2 k + 1 tau + 2 delta_min), sparsed 4
  ASSERT_EQ(v.size(), 1u + 4u + 20u + 4u);
  EXPECT_EQ(v[0].mode, "dense");
  EXPECT_EQ(v[0].budget_tokens, 0);
  std::set<std::string> keys;
  int delta_min_variants = 0;
  for (const ModeVariant& m : v) keys.insert(m.mode + m.options + std::to_string(m.budget_tokens));
  EXPECT_EQ(keys.size(), v.size()) << "every variant is told apart by mode, options and budget";
  for (const ModeVariant& m : v) {
    if (m.mode == "sparsed") EXPECT_DOUBLE_EQ(m.config.sparsed_select, m.budget_tokens / 4096.0);
    if (m.mode != "dense") EXPECT_EQ(m.config.budget_tokens, m.budget_tokens);
    if (m.options.rfind("delta_min=", 0) == 0) {
      ++delta_min_variants;
      EXPECT_EQ(m.config.active_rule, ActiveRule::delta_min);
      EXPECT_EQ(m.options, m.config.delta_min == 0.01 ? "delta_min=0.01" : "delta_min=0.05");
    }
  }
  EXPECT_EQ(delta_min_variants, 8);
  EXPECT_THROW(make_variants(grid, 0), ArgumentError);
  grid.with_complement = true;  // every LoSA variant twice
  const std::vector<ModeVariant> both = make_variants(grid, 4096);
  ASSERT_EQ(both.size(), v.size() + 20u);
  int complements = 0;
  for (const ModeVariant& m : both)
    if (m.config.losa_complement) {
      ++complements;
      EXPECT_EQ(m.mode, "losa");
      EXPECT_NE(m.options.find(",complement"), std::string::npos);
    }
  EXPECT_EQ(complements, 20);
  grid.delta_mins = {0.0};
  EXPECT_THROW(make_variants(grid, 4096), ArgumentError);
}

TEST(Evaluate, SeedsAreApartFromTrainingShards) {
  // losa tasks draws (shard << 32) + i with shard < 2^31: the top bit is never set.
  for (int64_t i : {0, 1, 1000}) EXPECT_NE(eval_seed(1, i) >> 63, 0u);
  EXPECT_NE(eval_seed(1, 0), eval_seed(2, 0));
  EXPECT_NE(eval_seed(1, 0), eval_seed(1, 1));
}

TEST(Evaluate, RecordsAgreeWithWhatWasGenerated) {
  const runtime::Weights weights = runtime::make_random_weights(small_config(), 11);
  std::unique_ptr<runtime::ModelBackend> backend = runtime::make_cpu_backend(weights, 2);
  EvalOptions options;
  options.tasks = {Task::single_needle, Task::chain};
  options.lengths = {256, 300};
  options.samples = 3;
  options.batch = 2;  // batches that split a task's samples
  options.decode.block_size = 4;
  options.decode.steps = 4;
  VariantGrid grid;
  grid.budgets = {32};
  grid.k_actives = {0};
  grid.taus = {0.5};
  int64_t last_done = -1, total = 0;
  const std::vector<EvalRecord> records = evaluate(
      *backend, options, [&](int64_t len) { return make_variants(grid, len); },
      [&](const EvalProgress& p) {
        EXPECT_GT(p.done, last_done);
        last_done = p.done;
        total = p.total;
      });
  const size_t variants = make_variants(grid, 256).size();  // dense, quest, losa k, losa tau, sparsed
  ASSERT_EQ(records.size(), 2u * variants * 2u);
  EXPECT_EQ(last_done, total);
  EXPECT_EQ(total, static_cast<int64_t>(2 * variants * 2 * 3));
  for (const EvalRecord& r : records) {
    ASSERT_EQ(r.samples, 3);
    ASSERT_EQ(r.generated.size(), 3u);
    // The score is what the generated tokens earn against a fresh copy of the examples.
    int correct = 0;
    for (int i = 0; i < 3; ++i) {
      const TaskExample ex = make_example(parse_task(r.task), r.context_len, eval_seed(options.seed, i));
      correct += is_correct(ex, r.generated[static_cast<size_t>(i)]) ? 1 : 0;
      EXPECT_FALSE(r.generated[static_cast<size_t>(i)].empty());
    }
    EXPECT_DOUBLE_EQ(r.accuracy, correct / 3.0);
    EXPECT_EQ(r.block_size, 4);
    EXPECT_GT(r.time_per_block_us, 0.0);
    if (r.mode == "dense") {
      EXPECT_DOUBLE_EQ(r.density, 1.0);
      EXPECT_DOUBLE_EQ(r.active_tokens, 4.0);
    } else {
      EXPECT_LT(r.density, 1.0) << r.mode << " " << r.options;  // 32 of ~256 prefix tokens
      EXPECT_GT(r.density, 0.0);
    }
    if (r.mode == "losa" && r.options == "k_active=0") EXPECT_LT(r.active_tokens, 4.0);
  }
  // Dense decoding is a function of the examples: the same records again.
  const std::vector<EvalRecord> again = evaluate(
      *backend, options, [&](int64_t len) { return std::vector<ModeVariant>{make_variants(grid, len)[0]}; });
  ASSERT_EQ(again.size(), 4u);
  EXPECT_EQ(again[0].generated, records[0].generated);
}

TEST(Evaluate, BadOptionsAreNamed) {
  const runtime::Weights weights = runtime::make_random_weights(small_config(), 1);
  std::unique_ptr<runtime::ModelBackend> backend = runtime::make_cpu_backend(weights, 1);
  const auto variants = [](int64_t len) { return make_variants(VariantGrid{}, len); };
  EvalOptions o;
  o.lengths = {100};
  try {
    evaluate(*backend, o, variants);
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), "lengths");
  }
  o.lengths = {512};
  o.samples = 0;
  EXPECT_THROW(evaluate(*backend, o, variants), ArgumentError);
  o.samples = 1;
  o.batch = 65;
  EXPECT_THROW(evaluate(*backend, o, variants), ArgumentError);
}

}  // namespace
}  // namespace losa::eval
