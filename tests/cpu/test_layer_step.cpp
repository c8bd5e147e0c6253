#include <gtest/gtest.h>

#include <numeric>

#include "common/test_util.hpp"
#include "losa/attention_state.hpp"
#include "losa/errors.hpp"
#include "losa/layer_step.hpp"

namespace losa {
namespace {

struct Fixture {
  BlockShape shape{8, 8, 2, 64};
  test::RandomCache rc = test::make_random_cache(517, 2, 64, 16, DType::bf16, 77, 2.0f);
  size_t q_elems() const { return static_cast<size_t>(shape.num_rows()) * shape.head_dim; }
  size_t kv_elems() const { return static_cast<size_t>(shape.block_size) * 2 * shape.head_dim; }
  std::vector<float> q(uint64_t seed) const { return test::random_vector(q_elems(), seed); }
  std::vector<float> kv(uint64_t seed) const { return test::random_vector(kv_elems(), seed); }
};

ModeConfig mode(Mode m) {
  ModeConfig c;
  c.mode = m;
  c.budget_tokens = 64;
  return c;
}

std::vector<float> run(const Fixture& f, const ModeConfig& c, LayerBlockState& st,
                       const std::vector<float>& q, const std::vector<float>& k,
                       const std::vector<float>& v, StepStats* stats = nullptr) {
  std::vector<float> o(q.size(), test::kPoison);
  StepStats s = layer_step(f.rc.cache, 0, f.shape, c, q.data(), k.data(), v.data(), st, o.data());
  if (stats) *stats = s;
  for (float x : o) EXPECT_FALSE(std::isnan(x));
  return o;
}

TEST(LayerStep, LosaStepZeroEqualsDense) {
  Fixture f;
  const auto q = f.q(1), k = f.kv(2), v = f.kv(3);
  LayerBlockState a, b;
  StepStats sa, sb;
  const auto dense = run(f, mode(Mode::dense), a, q, k, v, &sa);
  const auto losa = run(f, mode(Mode::losa), b, q, k, v, &sb);
  EXPECT_EQ(dense, losa);
  EXPECT_EQ(sa.density(), 1.0);
  EXPECT_EQ(sb.density(), 1.0);
  EXPECT_EQ(sb.active_tokens, 8);
}

TEST(LayerStep, LosaUnchangedQueriesReuseStepZeroBitForBit) {
  for (ActiveRule rule : {ActiveRule::tau, ActiveRule::top_k, ActiveRule::delta_min}) {
    Fixture f;
    const auto q = f.q(1), k = f.kv(2), v = f.kv(3);
    ModeConfig c = mode(Mode::losa);
    c.active_rule = rule;
    c.k_active = 3;
    LayerBlockState st;
    const auto step0 = run(f, c, st, q, k, v);
    for (int t = 1; t < 4; ++t) {
      StepStats s;
      EXPECT_EQ(run(f, c, st, q, k, v, &s), step0) << "step " << t;
      EXPECT_EQ(s.active_tokens, 0);
      EXPECT_EQ(s.density(), 0.0);
      EXPECT_EQ(s.kv_bytes, 0);
    }
  }
}

// The delta_min rule reaches the layer step with its own threshold: token 2 moves by a tenth
// of its size (normalised change 0.01), token 5 by 2x (4); thresholds around each pick
// exactly the tokens above them.
TEST(LayerStep, LosaDeltaMinThresholdPicksTheTokensAboveIt) {
  Fixture f;
  const auto q0 = f.q(1), k = f.kv(2), v = f.kv(3);
  auto q1 = q0;
  const size_t per_token = static_cast<size_t>(f.shape.num_q_heads) * f.shape.head_dim;
  for (size_t e = 0; e < per_token; ++e) {
    q1[2 * per_token + e] *= 1.1f;
    q1[5 * per_token + e] *= 3.0f;
  }
  const std::vector<std::pair<double, std::vector<int>>> cases{{1e-3, {2, 5}}, {0.02, {5}}, {5.0, {}}};
  for (const auto& [theta, want] : cases) {
    ModeConfig c = mode(Mode::losa);
    c.active_rule = ActiveRule::delta_min;
    c.delta_min = theta;
    LayerBlockState st;
    run(f, c, st, q0, k, v);
    StepDecisions d;
    std::vector<float> o(q1.size(), test::kPoison);
    const StepStats s = layer_step(f.rc.cache, 0, f.shape, c, q1.data(), k.data(), v.data(), st, o.data(), nullptr, &d);
    EXPECT_EQ(s.active_tokens, static_cast<int>(want.size())) << "delta_min " << theta;
    EXPECT_EQ(d.tokens, want) << "delta_min " << theta;
  }
}

// losa_complement: an active row's prefix part is the fresh query over the loaded pages merged
// with the step-0 query over the pages left out, checked against those two computed directly.
TEST(LayerStep, LosaComplementIsFreshLoadedPagesAndStepZeroRest) {
  Fixture f;
  const auto q0 = f.q(1), q1 = f.q(4), k = f.kv(2), v = f.kv(3);
  ModeConfig c = mode(Mode::losa);
  c.active_rule = ActiveRule::top_k;
  c.k_active = 3;
  c.losa_complement = true;
  LayerBlockState st;
  run(f, c, st, q0, k, v);
  StepDecisions d;
  std::vector<float> o(q1.size(), test::kPoison);
  layer_step(f.rc.cache, 0, f.shape, c, q1.data(), k.data(), v.data(), st, o.data(), nullptr, &d);
  ASSERT_EQ(d.tokens.size(), 3u);
  const int n = f.rc.cache.num_pages(0), Hq = f.shape.num_q_heads, Hk = f.shape.num_kv_heads, D = f.shape.head_dim;
  const float scale = f.shape.default_scale();
  std::vector<float> fresh_o(q1.size()), fresh_lse(f.shape.num_rows()), rest_o(q1.size()), rest_lse(f.shape.num_rows());
  prefix_attention(f.rc.cache, 0, f.shape, q1.data(), d.tokens, d.selection, scale, fresh_o.data(), fresh_lse.data());
  int rows_with_rest = 0;
  for (int t : d.tokens)
    for (int h = 0; h < Hq; ++h) {  // each row's own pages (attend=own): the rest is per row
      const int row = t * Hq + h;
      const auto& taken = d.selection.row_pages[row];
      PageSelection rest;
      rest.num_pages = n;
      rest.kv_head_pages.assign(Hk, {});
      for (int p = 0; p < n; ++p)
        if (std::find(taken.begin(), taken.end(), p) == taken.end()) rest.kv_head_pages[h / (Hq / Hk)].push_back(p);
      std::vector<float> ro(q1.size()), rl(f.shape.num_rows());
      prefix_attention(f.rc.cache, 0, f.shape, q0.data(), {t}, rest, scale, ro.data(), rl.data());
      std::vector<float> want(D);
      float want_lse = 0.0f;
      // A rest under kSubtractEmptyBelow of step 0's mass is dropped (its own test: test_attention).
      const double rest_share = std::exp(static_cast<double>(rl[row]) - st.anchor_lse()[row]);
      if (std::abs(rest_share - kSubtractEmptyBelow) < 1e-3) continue;  // on the edge: either is right
      rows_with_rest += rest_share >= kSubtractEmptyBelow;
      merge_state(&fresh_o[row * D], fresh_lse[row], &ro[row * D], rest_share < kSubtractEmptyBelow ? -INFINITY : rl[row],
                  D, want.data(), &want_lse);
      // The complement comes out of a difference of fp32 states: its error is their rounding
      // (an lse of ~10 stored in fp32 is off by up to ~1e-6, so is the part's share of the mass)
      // over the rest's share of step 0's mass.
      const double tol = 1e-6 + 3e-6 / rest_share;
      EXPECT_LT(test::rel_l2(&st.prefix_o()[row * D], want.data(), D), tol) << "row " << row << " rest " << rest_share;
      EXPECT_NEAR(st.prefix_lse()[row], want_lse, tol * std::abs(want_lse)) << "row " << row;
    }
  EXPECT_GT(rows_with_rest, 0) << "no row kept a complement: the test checked only the fresh part";
}

// Every page loaded: nothing is left out, and the complement changes nothing, bit for bit.
// An active row whose query is step 0's: its state is step 0's (replayed choice).
TEST(LayerStep, LosaComplementLimits) {
  Fixture f;
  const auto q0 = f.q(1), q1 = f.q(4), k = f.kv(2), v = f.kv(3);
  ModeConfig plain = mode(Mode::losa);
  plain.budget_tokens = 4096;  // more than the prefix: every page
  ModeConfig comp = plain;
  comp.losa_complement = true;
  LayerBlockState a, b;
  run(f, plain, a, q0, k, v);
  run(f, comp, b, q0, k, v);
  StepStats sa, sb;
  EXPECT_EQ(run(f, plain, a, q1, k, v, &sa), run(f, comp, b, q1, k, v, &sb));
  EXPECT_GT(sb.active_tokens, 0);
  EXPECT_EQ(sb.kv_bytes, 2 * sa.kv_bytes) << "the loaded pages are read once per query";

  ModeConfig few = mode(Mode::losa);
  few.losa_complement = true;
  LayerBlockState st;
  const auto step0 = run(f, few, st, q0, k, v);
  StepDecisions replay;
  replay.tokens = {1, 6};
  replay.selection = quest_select(f.rc.cache, 0, f.shape, q0.data(), replay.tokens, few.budget_tokens, few.attend);
  std::vector<float> o(q0.size(), test::kPoison);
  layer_step(f.rc.cache, 0, f.shape, few, q0.data(), k.data(), v.data(), st, o.data(), &replay);
  EXPECT_LT(test::rel_l2(o, step0), 1e-5);
}

TEST(LayerStep, LosaComplementNeedsItsStepZero) {  // switched on mid-block: nothing to subtract from
  Fixture f;
  const auto q0 = f.q(1), q1 = f.q(4), k = f.kv(2), v = f.kv(3);
  ModeConfig c = mode(Mode::losa);
  c.active_rule = ActiveRule::top_k;
  c.k_active = 3;
  LayerBlockState st;
  run(f, c, st, q0, k, v);
  c.losa_complement = true;
  std::vector<float> o(q1.size());
  EXPECT_THROW(layer_step(f.rc.cache, 0, f.shape, c, q1.data(), k.data(), v.data(), st, o.data()), ArgumentError);
}

TEST(LayerStep, LosaAllActiveEqualsQuest) {
  for (Attend attend : {Attend::own, Attend::union_}) {
    Fixture f;
    ModeConfig lc = mode(Mode::losa), qc = mode(Mode::quest);
    lc.active_rule = ActiveRule::top_k;
    lc.k_active = f.shape.block_size;
    lc.losa_step0_quest = true;
    lc.attend = qc.attend = attend;
    LayerBlockState ls, qs;
    for (int t = 0; t < 4; ++t) {
      const auto q = f.q(10 + t), k = f.kv(20 + t), v = f.kv(30 + t);  // every token changes
      StepStats sl, sq;
      EXPECT_EQ(run(f, lc, ls, q, k, v, &sl), run(f, qc, qs, q, k, v, &sq)) << "step " << t;
      EXPECT_EQ(sl.pages_loaded, sq.pages_loaded);
      EXPECT_GT(sq.density(), 0.0);
      EXPECT_LT(sq.density(), 1.0);
    }
  }
}

// At step t > 0 the output is: fresh QUEST prefix state for the active tokens, step-0 state for
// the stable ones, merged with the block part. Built here from the ops by hand.
TEST(LayerStep, LosaStepComposesCachedAndFreshStates) {
  Fixture f;
  ModeConfig c = mode(Mode::losa);
  c.active_rule = ActiveRule::top_k;
  c.k_active = 2;
  const auto q0 = f.q(1), k = f.kv(2), v = f.kv(3);
  LayerBlockState st;
  run(f, c, st, q0, k, v);
  auto q1 = q0;
  const int D = 64, Hq = 8, row = Hq * D;
  for (int e = 0; e < row; ++e) {
    q1[5 * row + e] += 1.0f;   // token 5: large change
    q1[2 * row + e] *= 1.5f;   // token 2: large change
    q1[7 * row + e] += 0.01f;  // token 7: small change, stays stable
  }
  StepStats s;
  const auto o = run(f, c, st, q1, k, v, &s);
  EXPECT_EQ(s.active_tokens, 2);

  const int n = f.rc.cache.num_pages(0);
  std::vector<float> po(q0.size()), pl(f.shape.num_rows());
  std::vector<int> all(8);
  std::iota(all.begin(), all.end(), 0);
  prefix_attention(f.rc.cache, 0, f.shape, q0.data(), all, select_all_pages(n, 2), f.shape.default_scale(), po.data(), pl.data());
  const PageSelection sel = quest_select(f.rc.cache, 0, f.shape, q1.data(), {2, 5}, 64, Attend::own);
  prefix_attention(f.rc.cache, 0, f.shape, q1.data(), {2, 5}, sel, f.shape.default_scale(), po.data(), pl.data());
  EXPECT_EQ(s.pages_loaded[0], static_cast<int64_t>(sel.kv_head_pages[0].size()));
  std::vector<float> bo(q0.size()), bl(f.shape.num_rows()), want(q0.size());
  block_attention(f.shape, q1.data(), k.data(), v.data(), f.shape.default_scale(), bo.data(), bl.data());
  for (int r = 0; r < f.shape.num_rows(); ++r) {
    float lse;
    merge_state(&po[r * D], pl[r], &bo[r * D], bl[r], D, &want[r * D], &lse);
  }
  EXPECT_EQ(o, want);
  // Stable tokens keep their reference query: the small drift of token 7 accumulates.
  for (int e = 0; e < row; ++e) {
    EXPECT_EQ(st.q_ref()[7 * row + e], q0[7 * row + e]);
    EXPECT_EQ(st.q_ref()[5 * row + e], q1[5 * row + e]);
  }
}

TEST(LayerStep, LosaZeroActiveIsFlashBlockLimit) {
  Fixture f;
  ModeConfig c = mode(Mode::losa);
  c.active_rule = ActiveRule::top_k;
  c.k_active = 0;
  LayerBlockState st;
  run(f, c, st, f.q(1), f.kv(2), f.kv(3));
  StepStats s;
  run(f, c, st, f.q(4), f.kv(5), f.kv(6), &s);
  EXPECT_EQ(s.active_tokens, 0);
  EXPECT_EQ(s.density(), 0.0);
}

TEST(LayerStep, SparsedWithSkipOneEqualsDense) {
  Fixture f;
  ModeConfig c = mode(Mode::sparsed);
  c.sparsed_skip = 1.0;
  c.steps_per_block = 4;
  LayerBlockState ss, ds;
  for (int t = 0; t < 4; ++t) {
    const auto q = f.q(40 + t), k = f.kv(50 + t), v = f.kv(60 + t);
    EXPECT_EQ(run(f, c, ss, q, k, v), run(f, mode(Mode::dense), ds, q, k, v)) << t;
  }
}

TEST(LayerStep, SparsedSwitchesToHeadPagesByMass) {
  Fixture f;
  ModeConfig c = mode(Mode::sparsed);
  c.steps_per_block = 8;
  c.sparsed_skip = 0.25;  // two full steps
  c.sparsed_select = 0.3;
  ASSERT_EQ(sparsed_full_steps(c), 2);
  LayerBlockState st;
  const int n = f.rc.cache.num_pages(0);
  std::vector<float> q_switch;
  for (int t = 0; t < 4; ++t) {
    const auto q = f.q(70 + t), k = f.kv(80 + t), v = f.kv(90 + t);
    StepStats s;
    const auto o = run(f, c, st, q, k, v, &s);
    if (t < 2) {
      EXPECT_EQ(s.density(), 1.0);
    } else {
      EXPECT_LT(s.density(), 1.0);
      EXPECT_GE(s.density(), 0.3);
      // The output is the prefix over the stored head pages merged with the block part.
      std::vector<int> all(8);
      std::iota(all.begin(), all.end(), 0);
      std::vector<float> po(q.size()), pl(f.shape.num_rows()), bo(q.size()), bl(f.shape.num_rows()), want(q.size());
      prefix_attention(f.rc.cache, 0, f.shape, q.data(), all, st.sparsed_selection(), f.shape.default_scale(), po.data(), pl.data());
      block_attention(f.shape, q.data(), k.data(), v.data(), f.shape.default_scale(), bo.data(), bl.data());
      for (int r = 0; r < f.shape.num_rows(); ++r) {
        float lse;
        merge_state(&po[r * 64], pl[r], &bo[r * 64], bl[r], 64, &want[r * 64], &lse);
      }
      EXPECT_EQ(o, want);
    }
    if (t == 1) {  // the switch step: selection from the mass under the merged lse
      std::vector<int> all(8);
      std::iota(all.begin(), all.end(), 0);
      std::vector<float> po(q.size()), pl(f.shape.num_rows()), bo(q.size()), bl(f.shape.num_rows()), lse(f.shape.num_rows());
      prefix_attention(f.rc.cache, 0, f.shape, q.data(), all, select_all_pages(n, 2), f.shape.default_scale(), po.data(), pl.data());
      block_attention(f.shape, q.data(), k.data(), v.data(), f.shape.default_scale(), bo.data(), bl.data());
      for (int r = 0; r < f.shape.num_rows(); ++r) merge_state(&po[r * 64], pl[r], &bo[r * 64], bl[r], 64, &po[r * 64], &lse[r]);
      const auto mass = sparsed_page_mass(f.rc.cache, 0, f.shape, q.data(), lse.data(), f.shape.default_scale());
      const PageSelection want = sparsed_select(mass, f.shape, n, 0.3, Attend::own);
      EXPECT_EQ(st.sparsed_selection().row_pages, want.row_pages);
      EXPECT_EQ(st.sparsed_selection().kv_head_pages, want.kv_head_pages);
    }
  }
}

// Replaying a step's own choices gives that step bit for bit (the GPU tests replay the GPU's
// choices this way), and a replayed token out of range is named.
TEST(LayerStep, ReplayingOwnChoicesReproducesTheStep) {
  for (Mode m : {Mode::quest, Mode::losa, Mode::sparsed}) {
    Fixture f;
    ModeConfig c = mode(m);
    c.steps_per_block = 4;
    c.sparsed_skip = 0.25;
    LayerBlockState made, replayed;
    for (int t = 0; t < 3; ++t) {
      const auto q = f.q(100 + t), k = f.kv(200 + t), v = f.kv(300 + t);
      std::vector<float> o1(q.size()), o2(q.size());
      StepDecisions choices;
      const StepStats s1 = layer_step(f.rc.cache, 0, f.shape, c, q.data(), k.data(), v.data(), made,
                                      o1.data(), nullptr, &choices);
      const StepStats s2 = layer_step(f.rc.cache, 0, f.shape, c, q.data(), k.data(), v.data(),
                                      replayed, o2.data(), &choices);
      EXPECT_EQ(o1, o2) << mode_name(m) << " step " << t;
      EXPECT_EQ(s1.pages_loaded, s2.pages_loaded);
      EXPECT_EQ(s1.bounds_bytes, s2.bounds_bytes);
      EXPECT_EQ(made.q_ref(), replayed.q_ref());
    }
  }
  Fixture f;
  LayerBlockState st;
  StepDecisions bad;
  bad.tokens = {16};
  const auto q = f.q(1), kv = f.kv(2);
  std::vector<float> o(q.size());
  EXPECT_THROW(layer_step(f.rc.cache, 0, f.shape, mode(Mode::dense), q.data(), kv.data(),
                          kv.data(), st, o.data(), &bad),
               ArgumentError);
}

TEST(LayerStep, PrefixChangeWithinBlockIsAnError) {
  Fixture f;
  LayerBlockState st;
  run(f, mode(Mode::losa), st, f.q(1), f.kv(2), f.kv(3));
  const auto k = f.kv(4);
  f.rc.cache.append(0, k.data(), k.data(), 16);
  std::vector<float> o(f.q_elems());
  const auto q = f.q(1), kv = f.kv(2);
  EXPECT_THROW(layer_step(f.rc.cache, 0, f.shape, mode(Mode::losa), q.data(), kv.data(), kv.data(), st, o.data()),
               ArgumentError);
  st.begin_block();
  EXPECT_NO_THROW(layer_step(f.rc.cache, 0, f.shape, mode(Mode::losa), q.data(), kv.data(), kv.data(), st, o.data()));
}

}  // namespace
}  // namespace losa
