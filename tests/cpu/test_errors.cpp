#include <gtest/gtest.h>

#include <functional>

#include "common/test_util.hpp"
#include "losa/errors.hpp"
#include "losa/layer_step.hpp"

namespace losa {
namespace {

// Passes only when `call` throws ArgumentError naming `argument`, with the name in what().
void expect_argument_error(const std::function<void()>& call, const std::string& argument) {
  try {
    call();
    ADD_FAILURE() << "no error for bad '" << argument << "'";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), argument) << e.what();
    EXPECT_NE(std::string(e.what()).find("'" + argument + "'"), std::string::npos) << e.what();
  }
}

struct Inputs {
  BlockShape shape{4, 8, 2, 64};
  test::RandomCache rc = test::make_random_cache(100, 2, 64, 16, DType::bf16, 1);
  std::vector<float> q = test::random_vector(4 * 8 * 64, 2);
  std::vector<float> kv = test::random_vector(4 * 2 * 64, 3);
  std::vector<float> o = std::vector<float>(4 * 8 * 64);
  LayerBlockState state;
  StepStats step(const BlockShape& s, const ModeConfig& c, const float* qp) {
    return layer_step(rc.cache, 0, s, c, qp, kv.data(), kv.data(), state, o.data());
  }
};

TEST(Errors, ShapeAndHeadCounts) {
  Inputs in;
  ModeConfig dense;
  expect_argument_error([&] { in.step(BlockShape{4, 6, 4, 64}, dense, in.q.data()); }, "num_q_heads");
  expect_argument_error([&] { in.step(BlockShape{4, 8, 4, 64}, dense, in.q.data()); }, "shape.num_kv_heads");
  expect_argument_error([&] { in.step(BlockShape{4, 8, 2, 96}, dense, in.q.data()); }, "head_dim");
  expect_argument_error([&] { in.step(BlockShape{4, 8, 2, 128}, dense, in.q.data()); }, "shape.head_dim");
  expect_argument_error([&] { in.step(BlockShape{0, 8, 2, 64}, dense, in.q.data()); }, "block_size");
  expect_argument_error([&] { in.step(in.shape, dense, nullptr); }, "q/k_blk/v_blk/o");
  expect_argument_error(
      [&] { layer_step(in.rc.cache, 3, in.shape, dense, in.q.data(), in.kv.data(), in.kv.data(), in.state, in.o.data()); },
      "seq");
}

TEST(Errors, ModeConfiguration) {
  Inputs in;
  ModeConfig c;
  c.mode = Mode::quest;
  c.budget_tokens = 0;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "budget_tokens");
  c.budget_tokens = -16;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "budget_tokens");
  c = ModeConfig{};
  c.mode = Mode::losa;
  c.tau = 0.0;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "tau");
  c.active_rule = ActiveRule::top_k;
  c.k_active = 5;  // block of 4
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "k_active");
  c.active_rule = ActiveRule::delta_min;
  c.delta_min = 0.0;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "delta_min");
  c.delta_min = NAN;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "delta_min");
  c = ModeConfig{};
  c.mode = Mode::losa;
  c.losa_complement = true;
  c.losa_step0_quest = true;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "losa_complement");
  c.mode = Mode::quest;
  c.losa_step0_quest = false;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "losa_complement");
  c = ModeConfig{};
  c.mode = Mode::sparsed;
  c.sparsed_select = 0.0;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "sparsed_select");
  c.sparsed_select = 0.5;
  c.steps_per_block = 0;
  expect_argument_error([&] { in.step(in.shape, c, in.q.data()); }, "steps_per_block");
  expect_argument_error([] { parse_mode("sparse"); }, "mode");
}

TEST(Errors, CacheConfiguration) {
  PagedKVConfig c;
  c.max_pages = 4;
  c.head_dim = 80;
  expect_argument_error([&] { PagedKVCache cache(c); }, "head_dim");
  c.head_dim = 64;
  c.page_size = 8;
  expect_argument_error([&] { PagedKVCache cache(c); }, "page_size");
  c.page_size = 16;
  c.num_kv_heads = 0;
  expect_argument_error([&] { PagedKVCache cache(c); }, "num_kv_heads");
  c.num_kv_heads = 1;
  c.max_pages = 0;
  expect_argument_error([&] { PagedKVCache cache(c); }, "max_pages");
}

TEST(Errors, PageIndexOutOfRangeAndSelectionShape) {
  Inputs in;
  const int n = in.rc.cache.num_pages(0);
  PageSelection sel = select_all_pages(n, 2);
  sel.kv_head_pages[1].push_back(n);  // one past the end
  std::vector<float> lse(in.shape.num_rows());
  expect_argument_error([&] { prefix_attention(in.rc.cache, 0, in.shape, in.q.data(), {0}, sel, 0.1f, in.o.data(), lse.data()); },
                        "selection");
  sel = select_all_pages(n, 2);
  sel.row_pages.assign(in.shape.num_rows(), {0, -1});
  expect_argument_error([&] { prefix_attention(in.rc.cache, 0, in.shape, in.q.data(), {0}, sel, 0.1f, in.o.data(), lse.data()); },
                        "selection");
  expect_argument_error([&] { prefix_attention(in.rc.cache, 0, in.shape, in.q.data(), {0}, select_all_pages(n, 3), 0.1f, in.o.data(), lse.data()); },
                        "selection");
  expect_argument_error([&] { prefix_attention(in.rc.cache, 0, in.shape, in.q.data(), {0}, select_all_pages(n + 1, 2), 0.1f, in.o.data(), lse.data()); },
                        "selection");
  expect_argument_error([&] { prefix_attention(in.rc.cache, 0, in.shape, in.q.data(), {2, 1}, select_all_pages(n, 2), 0.1f, in.o.data(), lse.data()); },
                        "tokens");
  expect_argument_error([&] { prefix_attention(in.rc.cache, 0, in.shape, in.q.data(), {4}, select_all_pages(n, 2), 0.1f, in.o.data(), lse.data()); },
                        "tokens");
  expect_argument_error([&] { in.rc.cache.page_id(0, n); }, "logical_page");
}

TEST(Errors, ActiveSetInputs) {
  expect_argument_error([] { select_active_tokens({0.1, NAN}, ActiveRule::tau, 0, 0.5); }, "delta");
  expect_argument_error([] { select_active_tokens({0.1, -1.0}, ActiveRule::tau, 0, 0.5); }, "delta");
  expect_argument_error([] { select_active_tokens({0.1}, ActiveRule::tau, 0, 1.5); }, "tau");
  for (double theta : {0.0, -0.1, double(NAN), double(INFINITY)})
    expect_argument_error([&] { select_active_tokens({0.1}, ActiveRule::delta_min, 0, 0.5, theta); }, "delta_min");
  expect_argument_error([] { quest_row_pages(nullptr, 4, -1); }, "budget_pages");
}

}  // namespace
}  // namespace losa
