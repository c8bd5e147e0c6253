// The batched engine: a batch of sequences of different lengths (0, 1, partial pages) in one set
// of launches equals one-sequence runs bit for bit and the CPU reference per sequence; q, k and v
// come as slices of one fused QKV tensor; a graph captured once replays across appends and
// blocks; bad arguments are refused before anything is queued.
#include <cuda_runtime.h>

#include <cstdio>
#include <optional>

#include "../../src/cuda/launchers.hpp"
#include "gpu_test_util.hpp"
#include "layer_step_harness.hpp"
#include "losa/cuda/engine.hpp"
#include "losa/errors.hpp"

namespace losa {
namespace {

// Per row, one bf16 rounding of the output and of P before P V: a few 2^-9 relative; the lse is
// fp32 throughout (relative L2 over rows).
constexpr double kTolOut = 1e-2, kTolRow = 2e-2, kTolLse = 1e-4;

struct BatchSetup {
  BlockShape shape{5, 8, 2, 128};
  PagedKVConfig cfg;
  std::vector<int> lengths{0, 1, 37, 300, 1029};
  int S() const { return static_cast<int>(lengths.size()); }
  int64_t qkv_stride() const { return static_cast<int64_t>(shape.num_q_heads + 2 * shape.num_kv_heads) * shape.head_dim; }

  BatchSetup() {
    cfg.num_kv_heads = shape.num_kv_heads;
    cfg.head_dim = shape.head_dim;
    cfg.page_size = 16;
    cfg.max_pages = 200;
    cfg.page_order_seed = 5;
  }

  /// Sequences filled in interleaved uneven chunks, so that their pages interleave in the pool.
  PagedKVCache make_cache(uint64_t seed) const {
    PagedKVCache cache(cfg);
    const size_t row = static_cast<size_t>(cfg.num_kv_heads) * cfg.head_dim;
    std::vector<int> done(S(), 0);
    for (int s = 0; s < S(); ++s) cache.add_sequence();
    for (int round = 0;; ++round) {
      bool any = false;
      for (int s = 0; s < S(); ++s) {
        const int n = std::min(7 + 3 * round, lengths[s] - done[s]);
        if (n <= 0) continue;
        any = true;
        auto k = test::random_vector(n * row, seed + 100 * s + round, 1.0f);
        const auto offsets = test::random_vector(n, seed + 100 * s + round + 50, 2.0f);
        for (int t = 0; t < n; ++t)
          for (size_t e = 0; e < row; ++e) k[t * row + e] += offsets[t] * ((e % 3) ? 1.0f : -1.0f);
        const auto v = test::random_vector(n * row, seed + 100 * s + round + 77);
        cache.append(s, test::rounded(k, cfg.dtype).data(), test::rounded(v, cfg.dtype).data(), n);
        done[s] += n;
      }
      if (!any) break;
    }
    return cache;
  }

  /// One step's inputs of every sequence: per sequence q [B, Hq, D], k, v [B, Hk, D] (rounded),
  /// and the fused device tensor [S * B, Hq + 2 Hk, D].
  struct Inputs {
    std::vector<test::StepInputs> per_seq;
    std::vector<float> fused;
  };
  Inputs make_inputs(uint64_t seed, int step, const Inputs* previous) const {
    Inputs in;
    const int B = shape.block_size, Hq = shape.num_q_heads, Hk = shape.num_kv_heads, D = shape.head_dim;
    in.fused.assign(static_cast<size_t>(S()) * B * qkv_stride(), 0.0f);
    for (int s = 0; s < S(); ++s) {
      test::StepInputs x;
      const size_t qn = static_cast<size_t>(B) * Hq * D, kn = static_cast<size_t>(B) * Hk * D;
      if (!previous) {
        x.q = test::random_vector(qn, seed + s, 1.5f);
        x.k = test::random_vector(kn, seed + s + 20);
        x.v = test::random_vector(kn, seed + s + 40);
      } else {  // a step later: token (s + step) % B jumps, the rest drift
        x = previous->per_seq[s];
        const auto jump = test::random_vector(qn, seed + 1000 * step + s, 1.5f);
        const auto drift = test::random_vector(qn, seed + 1000 * step + s + 7, 0.01f);
        for (size_t e = 0; e < qn; ++e) x.q[e] = (e / (Hq * D)) == static_cast<size_t>((s + step) % B) ? jump[e] : x.q[e] + drift[e];
      }
      x.q = test::rounded(x.q, cfg.dtype);
      x.k = test::rounded(x.k, cfg.dtype);
      x.v = test::rounded(x.v, cfg.dtype);
      for (int t = 0; t < B; ++t) {
        float* row = &in.fused[(static_cast<size_t>(s) * B + t) * qkv_stride()];
        std::copy_n(&x.q[static_cast<size_t>(t) * Hq * D], Hq * D, row);
        std::copy_n(&x.k[static_cast<size_t>(t) * Hk * D], Hk * D, row + Hq * D);
        std::copy_n(&x.v[static_cast<size_t>(t) * Hk * D], Hk * D, row + (Hq + Hk) * D);
      }
      in.per_seq.push_back(std::move(x));
    }
    return in;
  }
};

/// An engine with its own workspace and one layer state.
struct EngineRig {
  cuda::AttentionEngine engine;
  cuda::DeviceBuffer workspace, state_storage;
  cuda::LayerState state;
  EngineRig(const BlockShape& shape, const PagedKVConfig& cfg, const ModeConfig& mode, int num_seqs, int max_pages,
            const cuda::EngineOptions& options)
      : engine(shape, cfg, mode, options) {
    engine.plan(num_seqs, max_pages);
    workspace = cuda::allocate_for_engine(engine.workspace_bytes());
    engine.bind_workspace(workspace.data(), workspace.bytes());
    state_storage = cuda::allocate_for_engine(std::max<size_t>(engine.layer_state_bytes(), 1));
    state = engine.make_layer_state(state_storage.data(), state_storage.bytes());
  }
};

cuda::StepIO fused_io(const BatchSetup& b, const cuda::DeviceBuffer& qkv, const cuda::DeviceBuffer& o, int first_seq) {
  const int Hq = b.shape.num_q_heads, Hk = b.shape.num_kv_heads, D = b.shape.head_dim, B = b.shape.block_size;
  const size_t row0 = static_cast<size_t>(first_seq) * B;
  const auto* base = static_cast<const uint16_t*>(qkv.data()) + row0 * b.qkv_stride();
  cuda::StepIO io;
  io.q = cuda::TokenTensor{base, b.qkv_stride()};
  io.k = cuda::TokenTensor{base + Hq * D, b.qkv_stride()};
  io.v = cuda::TokenTensor{base + (Hq + Hk) * D, b.qkv_stride()};
  io.o = static_cast<uint16_t*>(o.data()) + row0 * Hq * D;
  return io;
}

ModeConfig mode_of(Mode m, Attend attend = Attend::own) {
  ModeConfig c;
  c.mode = m;
  c.budget_tokens = 64;
  c.attend = attend;
  c.steps_per_block = 4;
  c.sparsed_skip = 0.25;  // one full step, then sparse
  c.sparsed_select = 0.3;
  return c;
}

void check_batch_against_singles_and_cpu(const ModeConfig& mode, int splits = 3) {
  const BatchSetup b;
  const PagedKVCache cache = b.make_cache(17);
  cuda::DeviceKVCache dev(b.cfg, 1);
  dev.upload(cache, 0);
  int max_pages = 1;
  for (int s = 0; s < b.S(); ++s) max_pages = std::max(max_pages, dev.reserved_pages(s));
  cuda::EngineOptions options;
  options.force_num_splits = splits;  // the same splits batched and alone: bit-identical outputs
  EngineRig batched(b.shape, b.cfg, mode, b.S(), max_pages, options);
  std::vector<std::unique_ptr<EngineRig>> singles;
  for (int s = 0; s < b.S(); ++s)
    singles.push_back(std::make_unique<EngineRig>(b.shape, b.cfg, mode, 1, max_pages, options));
  std::vector<LayerBlockState> cpu(b.S());
  const size_t out_elems = static_cast<size_t>(b.S()) * b.shape.num_rows() * b.shape.head_dim;
  cuda::DeviceBuffer o_batch(out_elems * 2), o_single(out_elems * 2);
  BatchSetup::Inputs in;
  for (int step = 0; step < 4; ++step) {
    in = b.make_inputs(99, step, step ? &in : nullptr);
    cuda::DeviceBuffer qkv = cuda::upload_as(b.cfg.dtype, in.fused);
    std::vector<uint16_t> poison(out_elems, 0x7fc0);
    o_batch.upload(poison.data(), out_elems * 2);
    o_single.upload(poison.data(), out_elems * 2);
    batched.engine.run(dev.view(0), fused_io(b, qkv, o_batch, 0), batched.state, step);
    std::vector<StepDecisions> decisions;
    for (int s = 0; s < b.S(); ++s) decisions.push_back(batched.engine.last_decisions(s, batched.state));
    for (int s = 0; s < b.S(); ++s)
      singles[s]->engine.run(dev.view(0, s, 1), fused_io(b, qkv, o_single, s), singles[s]->state, step);
    cuda::synchronize(nullptr);
    std::vector<uint16_t> got_batch(out_elems), got_single(out_elems);
    o_batch.download(got_batch.data(), out_elems * 2);
    o_single.download(got_single.data(), out_elems * 2);
    EXPECT_EQ(got_batch, got_single) << mode_name(mode.mode) << " step " << step << ": batched != one sequence at a time";
    const auto gpu_o = cuda::download_as(b.cfg.dtype, o_batch, out_elems);
    for (int s = 0; s < b.S(); ++s) {
      const test::StepInputs& x = in.per_seq[s];
      StepDecisions own;
      LayerBlockState own_state = cpu[s];
      std::vector<float> own_o(x.q.size());
      layer_step(cache, s, b.shape, mode, x.q.data(), x.k.data(), x.v.data(), own_state, own_o.data(), nullptr, &own);
      test::check_active_set(b.shape, mode, cpu[s], x, decisions[s], own, step);
      const bool quest = mode.mode == Mode::quest || (mode.mode == Mode::losa && step > 0);
      if (quest) test::check_quest_rows(cache, s, b.shape, mode, x, decisions[s], own, step);
      std::vector<float> cpu_o(x.q.size());
      const StepStats cpu_stats = layer_step(cache, s, b.shape, mode, x.q.data(), x.k.data(), x.v.data(), cpu[s],
                                             cpu_o.data(), &decisions[s]);
      const float* g = &gpu_o[static_cast<size_t>(s) * x.q.size()];
      EXPECT_LT(test::rel_l2(g, cpu_o.data(), cpu_o.size()), kTolOut) << "seq " << s << " step " << step;
      for (int r = 0; r < b.shape.num_rows(); ++r)
        EXPECT_LT(test::rel_l2(g + static_cast<size_t>(r) * b.shape.head_dim, &cpu_o[static_cast<size_t>(r) * b.shape.head_dim],
                               b.shape.head_dim),
                  kTolRow)
            << "seq " << s << " step " << step << " row " << r;
      const StepStats gpu_stats = batched.engine.last_stats(s);
      EXPECT_EQ(gpu_stats.pages_loaded, cpu_stats.pages_loaded) << "seq " << s << " step " << step;
      EXPECT_EQ(gpu_stats.active_tokens, cpu_stats.active_tokens) << "seq " << s << " step " << step;
    }
  }
}

TEST(GpuBatch, Dense) { LOSA_REQUIRE_GPU(); check_batch_against_singles_and_cpu(mode_of(Mode::dense)); }
TEST(GpuBatch, QuestOwn) { LOSA_REQUIRE_GPU(); check_batch_against_singles_and_cpu(mode_of(Mode::quest)); }
TEST(GpuBatch, QuestUnion) { LOSA_REQUIRE_GPU(); check_batch_against_singles_and_cpu(mode_of(Mode::quest, Attend::union_)); }
TEST(GpuBatch, LosaTau) { LOSA_REQUIRE_GPU(); check_batch_against_singles_and_cpu(mode_of(Mode::losa)); }
TEST(GpuBatch, LosaTopKWithKvChange) {
  LOSA_REQUIRE_GPU();
  ModeConfig m = mode_of(Mode::losa);
  m.active_rule = ActiveRule::top_k;
  m.k_active = 2;
  m.change_includes_kv = true;
  check_batch_against_singles_and_cpu(m);
}
TEST(GpuBatch, LosaDeltaMin) {  // one token per sequence jumps (change ~2), the rest drift (~1e-4)
  LOSA_REQUIRE_GPU();
  ModeConfig m = mode_of(Mode::losa);
  m.active_rule = ActiveRule::delta_min;
  m.delta_min = 0.01;
  check_batch_against_singles_and_cpu(m);
}
TEST(GpuBatch, LosaComplement) {
  LOSA_REQUIRE_GPU();
  ModeConfig m = mode_of(Mode::losa);
  m.losa_complement = true;
  check_batch_against_singles_and_cpu(m);
}
TEST(GpuBatch, SparsedOwn) { LOSA_REQUIRE_GPU(); check_batch_against_singles_and_cpu(mode_of(Mode::sparsed)); }
TEST(GpuBatch, SparsedUnion) { LOSA_REQUIRE_GPU(); check_batch_against_singles_and_cpu(mode_of(Mode::sparsed, Attend::union_)); }
// Both instances of the split merge (32 partial rows in flight per warp for one-wave grids, 5 for
// larger ones; these small batches get 32), each forced, equal the reference: with 3 splits
// (one chunk), and with 40 (past the 32 weights a warp holds at once, 5-row chunks that end
// at the 32nd, most splits empty).
TEST(GpuBatch, SplitMergeAtEitherDepth) {
  LOSA_REQUIRE_GPU();
  for (int rows : {5, 32})
    for (int splits : {3, 40}) {
      SCOPED_TRACE("partial rows in flight: " + std::to_string(rows) + ", splits: " + std::to_string(splits));
      const test::ScopedForce forced(cuda::force_finalize_rows_in_flight, rows);
      check_batch_against_singles_and_cpu(mode_of(Mode::dense), splits);
      check_batch_against_singles_and_cpu(mode_of(Mode::losa), splits);
    }
}

// Both register budgets of the page scores at head dim 128 (4 CTAs per SM for one-wave grids,
// 5 for larger ones; these small batches get 4), each forced, select the reference's pages
// (check_quest_rows) and equal the reference's outputs, for QUEST and for LoSA's later steps.
TEST(GpuBatch, PageScoresAtEitherRegisterBudget) {
  EXPECT_THROW(cuda::force_page_score_ctas_per_sm(3), ArgumentError);
  EXPECT_THROW(cuda::page_score_resident_ctas(DType::bf16, 128, 6), ArgumentError);
  LOSA_REQUIRE_GPU();
  const int compute_major = test::compute_capability() / 10;
  for (int ctas : {5, 4}) {
    SCOPED_TRACE("page-score CTAs per SM: " + std::to_string(ctas));
    // The dispatch sizes one wave by each instance's count, which its register cap gives on
    // sm_90 (there registers bind); elsewhere the 33 KB of static shared memory may bind first
    // (sm_80: 4 per SM, sm_86/89: 2), never above the cap.
    for (DType dtype : {DType::bf16, DType::f16}) {
      const int resident = cuda::page_score_resident_ctas(dtype, 128, ctas);
      if (compute_major == 9)
        EXPECT_EQ(resident, ctas) << dtype_name(dtype);
      else
        EXPECT_TRUE(resident >= 1 && resident <= ctas) << dtype_name(dtype) << ": " << resident;
    }
    const test::ScopedForce forced(cuda::force_page_score_ctas_per_sm, ctas);
    check_batch_against_singles_and_cpu(mode_of(Mode::quest));
    check_batch_against_singles_and_cpu(mode_of(Mode::losa));
  }
}

// Three blocks of a LoSA decode, every step a replay of one of three graphs captured once
// (step 0, step t > 0, and the commit: a step t > 0 whose block K/V are then appended and the
// lengths advanced, all on the device), against the CPU reference appending the same blocks.
void graph_replays_across_blocks(const ModeConfig& mode) {
  BatchSetup b;
  b.lengths = {0, 13, 100};
  PagedKVCache cache = b.make_cache(31);
  const int blocks = 3, B = b.shape.block_size, Hk = b.shape.num_kv_heads, D = b.shape.head_dim;
  cuda::DeviceKVCache dev(b.cfg, 1);
  dev.upload(cache, 0, static_cast<int64_t>(blocks) * B);
  int max_pages = 1;
  for (int s = 0; s < b.S(); ++s) max_pages = std::max(max_pages, dev.reserved_pages(s));
  EngineRig rig(b.shape, b.cfg, mode, b.S(), max_pages, {});
  const size_t out_elems = static_cast<size_t>(b.S()) * b.shape.num_rows() * D;
  const size_t qkv_elems = static_cast<size_t>(b.S()) * B * b.qkv_stride();
  cuda::DeviceBuffer qkv(qkv_elems * 2), o(out_elems * 2);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  const cuda::StepIO io = fused_io(b, qkv, o, 0);
  auto capture = [&](int step, bool commit) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    EXPECT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    rig.engine.run(dev.view(0), io, rig.state, step, stream);
    if (commit) {
      dev.append(0, 0, b.S(), io.k, io.v, B, stream);
      dev.advance(0, b.S(), B, stream);  // inside a capture: the host mirror is left to mirror_advance
    }
    EXPECT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    EXPECT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    cudaGraphDestroy(graph);
    return exec;
  };
  const cudaGraphExec_t first = capture(0, false), later = capture(1, false), commit = capture(1, true);
  ASSERT_EQ(dev.kv_len(1), 13) << "capturing advance() must not move the host mirror";
  std::vector<LayerBlockState> cpu(b.S());
  BatchSetup::Inputs in;
  for (int block = 0; block < blocks; ++block) {
    for (int s = 0; s < b.S(); ++s) cpu[s].begin_block();
    for (int step = 0; step < 3; ++step) {
      in = b.make_inputs(500 + block, step, step ? &in : nullptr);
      const auto packed = cuda::upload_as(b.cfg.dtype, in.fused);
      ASSERT_EQ(cudaMemcpyAsync(qkv.data(), packed.data(), qkv_elems * 2, cudaMemcpyDeviceToDevice, stream), cudaSuccess);
      std::vector<uint16_t> poison(out_elems, 0x7fc0);
      ASSERT_EQ(cudaMemcpyAsync(o.data(), poison.data(), out_elems * 2, cudaMemcpyHostToDevice, stream), cudaSuccess);
      const bool is_commit = step == 2;
      ASSERT_EQ(cudaGraphLaunch(step == 0 ? first : (is_commit ? commit : later), stream), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      const auto gpu_o = cuda::download_as(b.cfg.dtype, o, out_elems);
      for (int s = 0; s < b.S(); ++s) {
        const test::StepInputs& x = in.per_seq[s];
        // Dense steps have no choice to replay; LoSA's later steps replay the device's choices.
        // After a commit the device lengths have moved on: the choices are read against the
        // prefix the step saw (the CPU's, not yet appended).
        const bool replay = mode.mode == Mode::losa && step > 0;
        StepDecisions d = replay ? rig.engine.last_decisions(s, rig.state, stream) : StepDecisions{};
        if (replay) {
          const int n = cache.num_pages(s);
          d.selection.num_pages = n;
          for (auto& pages : d.selection.row_pages)
            pages.erase(std::remove_if(pages.begin(), pages.end(), [&](int p) { return p >= n; }), pages.end());
        }
        std::vector<float> cpu_o(x.q.size());
        layer_step(cache, s, b.shape, mode, x.q.data(), x.k.data(), x.v.data(), cpu[s], cpu_o.data(), replay ? &d : nullptr);
        EXPECT_LT(test::rel_l2(&gpu_o[static_cast<size_t>(s) * x.q.size()], cpu_o.data(), cpu_o.size()), kTolOut)
            << "block " << block << " step " << step << " seq " << s;
      }
      if (is_commit) {
        dev.mirror_advance(0, b.S(), B);
        for (int s = 0; s < b.S(); ++s) cache.append(s, in.per_seq[s].k.data(), in.per_seq[s].v.data(), B);
      }
    }
  }
  // The device cache holds what the CPU appended, bit for bit, bounds too (each side at its own
  // physical pages: the device reserved its pages ahead, the CPU took them as it went).
  const size_t page_bytes = static_cast<size_t>(Hk) * b.cfg.page_size * D * 2, bound_bytes = static_cast<size_t>(Hk) * D * 2;
  for (int s = 0; s < b.S(); ++s) {
    ASSERT_EQ(dev.kv_len(s), cache.kv_len(s));
    const auto table = dev.page_table(s);
    for (int p = 0; p < cache.num_pages(s); ++p) {
      std::vector<uint8_t> got(page_bytes), got_min(bound_bytes), got_max(bound_bytes);
      cudaMemcpy(got.data(), static_cast<const uint8_t*>(dev.keys(0)) + table[p] * page_bytes, page_bytes, cudaMemcpyDeviceToHost);
      cudaMemcpy(got_min.data(), static_cast<const uint8_t*>(dev.key_min(0)) + table[p] * bound_bytes, bound_bytes,
                 cudaMemcpyDeviceToHost);
      cudaMemcpy(got_max.data(), static_cast<const uint8_t*>(dev.key_max(0)) + table[p] * bound_bytes, bound_bytes,
                 cudaMemcpyDeviceToHost);
      const int phys = cache.page_id(s, p);
      const auto* want = static_cast<const uint8_t*>(cache.keys_data()) + phys * page_bytes;
      const int valid = cache.tokens_in_page(s, p);
      for (int h = 0; h < Hk; ++h)
        EXPECT_EQ(0, memcmp(got.data() + h * b.cfg.page_size * D * 2, want + h * b.cfg.page_size * D * 2, valid * D * 2))
            << "seq " << s << " page " << p;
      EXPECT_EQ(0, memcmp(got_min.data(), static_cast<const uint8_t*>(cache.key_min_data()) + phys * bound_bytes, bound_bytes))
          << "seq " << s << " page " << p;
      EXPECT_EQ(0, memcmp(got_max.data(), static_cast<const uint8_t*>(cache.key_max_data()) + phys * bound_bytes, bound_bytes))
          << "seq " << s << " page " << p;
    }
  }
  cudaGraphExecDestroy(first);
  cudaGraphExecDestroy(later);
  cudaGraphExecDestroy(commit);
  cudaStreamDestroy(stream);
}

TEST(GpuBatchGraph, LosaReplaysAcrossAppendsAndBlocks) {
  LOSA_REQUIRE_GPU();
  ModeConfig m = mode_of(Mode::losa);
  m.active_rule = ActiveRule::top_k;
  m.k_active = 2;
  graph_replays_across_blocks(m);
}
TEST(GpuBatchGraph, LosaComplementReplaysAcrossAppendsAndBlocks) {  // step 0's copies inside the graph
  LOSA_REQUIRE_GPU();
  ModeConfig m = mode_of(Mode::losa);
  m.active_rule = ActiveRule::top_k;
  m.k_active = 2;
  m.losa_complement = true;
  graph_replays_across_blocks(m);
}
TEST(GpuBatchGraph, DenseReplaysAcrossAppendsAndBlocks) { LOSA_REQUIRE_GPU(); graph_replays_across_blocks(mode_of(Mode::dense)); }

TEST(GpuBatchErrors, BadArgumentsAreRefusedBeforeAnythingRuns) {
  LOSA_REQUIRE_GPU();
  const BatchSetup b;
  const PagedKVCache cache = b.make_cache(3);
  cuda::DeviceKVCache dev(b.cfg, 1);
  dev.upload(cache, 0, 40);
  EngineRig rig(b.shape, b.cfg, mode_of(Mode::losa), b.S(), 100, {});
  const size_t qkv_elems = static_cast<size_t>(b.S()) * b.shape.block_size * b.qkv_stride();
  cuda::DeviceBuffer qkv(qkv_elems * 2 + 64), o(static_cast<size_t>(b.S()) * b.shape.num_rows() * b.shape.head_dim * 2);
  cuda::StepIO io = fused_io(b, qkv, o, 0);
  auto expect_argument = [&](const std::string& argument, auto&& call) {
    try {
      call();
      ADD_FAILURE() << "no error for " << argument;
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.argument(), argument) << e.what();
    }
  };
  cuda::StepIO misaligned = io;
  misaligned.q.data = static_cast<const char*>(io.q.data) + 2;
  expect_argument("io", [&] { rig.engine.run(dev.view(0), misaligned, rig.state, 0); });
  cuda::StepIO short_stride = io;
  short_stride.q.stride = 8;
  expect_argument("io.q/o stride", [&] { rig.engine.run(dev.view(0), short_stride, rig.state, 0); });
  expect_argument("kv", [&] { rig.engine.run(dev.view(0, 0, 2), io, rig.state, 0); });  // 2 sequences, plan has 5
  expect_argument("step", [&] { rig.engine.run(dev.view(0), io, rig.state, -1); });
  cuda::LayerState foreign;
  expect_argument("state", [&] { rig.engine.run(dev.view(0), io, foreign, 0); });
  // The prefix changes within a block, even by tokens that land in a partly filled page.
  rig.engine.run(dev.view(0), io, rig.state, 0);
  dev.append(0, 0, b.S(), io.k, io.v, 1);
  dev.advance(0, b.S(), 1);
  expect_argument("kv", [&] { rig.engine.run(dev.view(0), io, rig.state, 1); });
  expect_argument("num_tokens", [&] { dev.advance(0, 1, 1000); });
  // SparseD's group limit is checked when the engine is made, not in the middle of a run.
  PagedKVConfig wide = b.cfg;
  wide.num_kv_heads = 1;
  wide.head_dim = 64;
  expect_argument("shape.num_q_heads", [&] { cuda::AttentionEngine(BlockShape{4, 65, 1, 64}, wide, mode_of(Mode::sparsed)); });
  cuda::AttentionEngine unplanned(b.shape, b.cfg, mode_of(Mode::dense));
  expect_argument("plan", [&] { unplanned.run(dev.view(0), io, rig.state, 0); });
  // A prefix longer than the top-k can stage is refused when planned, not when launched.
  PagedKVConfig huge = b.cfg;
  huge.max_pages = cuda::topk_max_pages() + 1;
  cuda::AttentionEngine quest_engine(b.shape, huge, mode_of(Mode::quest));
  expect_argument("max_pages_per_seq", [&] { quest_engine.plan(1, huge.max_pages); });
  cuda::synchronize(nullptr);
}

/// The attention's pipeline depth forced for the scope; empty, with a note saying what was not
/// done, where the device cannot hold it.
std::optional<test::ScopedForce> force_stages_or_note(int stages, const char* not_done) {
  try {
    return std::optional<test::ScopedForce>(std::in_place, cuda::force_attention_stages, stages);
  } catch (const ArgumentError& e) {
    std::printf("[  NOTE    ] %d stages not %s: %s\n", stages, not_done, e.what());
    return std::nullopt;
  }
}

// Head dim 64's automatic pipeline depth costs no residency: at every row count a CTA takes
// (16 and 64 rows on 4 warps, 128 on 8), the CTAs per SM the plan sees at the automatic depth are
// at least those at either forced depth (3 only where the device holds it). On sm_90 registers,
// not shared memory, bind both depths alike, so 3 stages stay the choice there; sm_86/89 (100 KB
// per SM, one 3-stage CTA where two 2-stage ones fit) take 2.
TEST(GpuAttentionStages, HeadDim64DepthKeepsTheMostResidentCtas) {
  LOSA_REQUIRE_GPU();
  const int automatic = cuda::attention_stages(DType::bf16, 64);
  ASSERT_TRUE(automatic == 2 || automatic == 3) << automatic;
  for (int rows : {16, 64, 128}) {
    const int chosen = cuda::attention_resident_ctas(DType::bf16, 64, rows);
    for (int stages : {2, 3}) {
      const std::optional<test::ScopedForce> forced = force_stages_or_note(stages, "compared");
      if (!forced) continue;
      EXPECT_GE(chosen, cuda::attention_resident_ctas(DType::bf16, 64, rows)) << rows << " rows, " << stages << " stages";
    }
  }
  if (test::compute_capability() == 90) EXPECT_EQ(automatic, 3) << "sm_90: both depths hold the same CTAs per SM";
}

// Both pipeline depths of the attention kernel (2 stages: the default at head dim 128 and all
// that sm_86/89 hold; 3: the default at head dim 64), against the reference, with every row
// count a CTA meets: 64 rows on 4 warps and 128 on 8 (B = 16 and 32 dense and QUEST), a 4-warp
// CTA with one busy warp (B = 4 dense: 16 rows; LoSA at B = 16 with 4 active tokens), and an
// 8-warp CTA with one or two (LoSA at B = 32 with 2 and 8 active tokens: 8 and 32 rows). A
// device that cannot hold 3 stages refuses them (said here, not counted as run).
TEST(GpuAttentionStages, EitherPipelineDepthMatchesReference) {
  EXPECT_THROW(cuda::force_attention_stages(4), ArgumentError);
  LOSA_REQUIRE_GPU();
  test::RandomCache rc = test::make_random_cache(3000, 8, 128, 16, DType::bf16, 12, 2.0f);
  struct Case {
    int block;
    Mode mode;
    int k_active;  // LoSA's active tokens (top-k rule); 0 for the other modes
  };
  const Case cases[] = {{16, Mode::dense, 0}, {16, Mode::quest, 0}, {32, Mode::dense, 0}, {32, Mode::quest, 0},
                        {4, Mode::dense, 0},  {32, Mode::losa, 2},  {32, Mode::losa, 8}, {16, Mode::losa, 4}};
  for (int stages : {2, 3}) {
    const std::optional<test::ScopedForce> forced = force_stages_or_note(stages, "run");
    if (!forced) continue;
    ASSERT_EQ(cuda::attention_stages(DType::bf16, 128), stages);
    for (const Case& c : cases) {
      SCOPED_TRACE(std::to_string(stages) + " stages, B = " + std::to_string(c.block) + ", " + mode_name(c.mode) +
                   (c.k_active ? ", " + std::to_string(c.k_active) + " active" : std::string()));
      const BlockShape shape{c.block, 32, 8, 128};
      ModeConfig mode = mode_of(c.mode);
      if (c.mode == Mode::losa) {
        mode.active_rule = ActiveRule::top_k;
        mode.k_active = c.k_active;
      }
      const int steps = c.mode == Mode::losa ? 3 : 1;  // LoSA: step 0 is dense, later steps sparse
      const auto r = test::run_side_by_side(rc.cache, shape, mode, steps, [&](int t) {
        return test::StepInputs{
            test::rounded(test::random_vector(static_cast<size_t>(shape.num_rows()) * 128, 3 + 10 * t, 1.5f),
                          DType::bf16),
            test::rounded(test::random_vector(static_cast<size_t>(c.block) * 8 * 128, 4 + 10 * t), DType::bf16),
            test::rounded(test::random_vector(static_cast<size_t>(c.block) * 8 * 128, 5 + 10 * t), DType::bf16)};
      });
      EXPECT_LT(r.max_err_o, kTolOut);
      EXPECT_LT(r.max_err_lse, kTolLse);  // LoSA's later steps reuse step 0's prefix state
      EXPECT_LT(r.max_row_err_o, kTolRow);
    }
  }
}

/// force_attention_mma for test::ScopedForce (0 restores the automatic choice).
void set_attention_mma(int mma) { cuda::force_attention_mma(static_cast<cuda::AttentionMma>(mma)); }

// The automatic choice: wgmma for CTAs of 64 rows and more where it exists, mma.sync for fewer
// (a warpgroup would multiply 64 rows for 16) and wherever it does not.
TEST(GpuAttentionMma, AutomaticChoiceFollowsRowsAndDevice) {
  LOSA_REQUIRE_GPU();
  const bool available = cuda::attention_wgmma_available();
  if (test::compute_capability() != 90) EXPECT_FALSE(available);
  EXPECT_EQ(cuda::attention_uses_wgmma(64), available);
  EXPECT_EQ(cuda::attention_uses_wgmma(256), available);
  EXPECT_FALSE(cuda::attention_uses_wgmma(16));
  {
    const test::ScopedForce sync(set_attention_mma, static_cast<int>(cuda::AttentionMma::mma_sync));
    EXPECT_FALSE(cuda::attention_uses_wgmma(256));
  }
  EXPECT_EQ(cuda::attention_uses_wgmma(256), available);  // the scope restored the choice
  if (!available) EXPECT_THROW(cuda::force_attention_mma(cuda::AttentionMma::wgmma), ArgumentError);
}

// A tensor-core path of the unmasked attention, forced, against the reference at every CTA shape
// it meets: a warpgroup with one busy warp (B = 4: 16 rows), one full warpgroup (B = 16: 64 rows),
// two (B = 32: 128 rows on 8 warps), two CTAs of two (B = 64), an 8-warp CTA whose second
// warpgroup has 16 rows (B = 20: 80), a union of sparse rows (QUEST; LoSA with attend=union,
// whose 32 active rows leave the 8-warp CTA's second warpgroup without any), LoSA's dense step 0;
// head dim 64 on 4 and 8 warps, and f16. wgmma reads its own tile layout (128-byte column blocks):
// a wrong descriptor stride or swizzle scrambles keys or values and fails this.
void check_attention_path_against_reference() {
  struct Case {
    int block;
    Mode mode;
    int k_active;  // LoSA's active tokens (top-k rule); 0 for the other modes
    int head_dim;
    DType dtype;
  };
  const Case cases[] = {{16, Mode::dense, 0, 128, DType::bf16}, {32, Mode::dense, 0, 128, DType::bf16},
                        {64, Mode::dense, 0, 128, DType::bf16}, {4, Mode::dense, 0, 128, DType::bf16},
                        {20, Mode::dense, 0, 128, DType::bf16}, {32, Mode::quest, 0, 128, DType::bf16},
                        {16, Mode::losa, 4, 128, DType::bf16},  {32, Mode::losa, 8, 128, DType::bf16},
                        {32, Mode::dense, 0, 64, DType::bf16},  {16, Mode::dense, 0, 64, DType::bf16},
                        {16, Mode::dense, 0, 128, DType::f16},  {32, Mode::dense, 0, 64, DType::f16}};
  for (const Case& c : cases) {
    SCOPED_TRACE("B = " + std::to_string(c.block) + ", " + mode_name(c.mode) + ", head dim " +
                 std::to_string(c.head_dim) + ", " + dtype_name(c.dtype));
    // 3,000 tokens: 188 pages, the last one partial.
    test::RandomCache rc = test::make_random_cache(3000, 8, c.head_dim, 16, c.dtype, 31, 2.0f);
    const BlockShape shape{c.block, 32, 8, c.head_dim};
    ModeConfig mode = mode_of(c.mode, c.mode == Mode::dense ? Attend::own : Attend::union_);
    if (c.mode == Mode::losa) {
      mode.active_rule = ActiveRule::top_k;
      mode.k_active = c.k_active;
    }
    const int steps = c.mode == Mode::losa ? 3 : 1;
    const size_t kv_elems = static_cast<size_t>(c.block) * 8 * c.head_dim;
    const auto r = test::run_side_by_side(rc.cache, shape, mode, steps, [&](int t) {
      return test::StepInputs{
          test::rounded(test::random_vector(static_cast<size_t>(shape.num_rows()) * c.head_dim, 7 + 10 * t, 1.5f),
                        c.dtype),
          test::rounded(test::random_vector(kv_elems, 8 + 10 * t), c.dtype),
          test::rounded(test::random_vector(kv_elems, 9 + 10 * t), c.dtype)};
    });
    EXPECT_LT(r.max_err_o, kTolOut);
    EXPECT_LT(r.max_err_lse, kTolLse);
    EXPECT_LT(r.max_row_err_o, kTolRow);
  }
}

TEST(GpuAttentionMma, MmaSyncPathMatchesReference) {
  LOSA_REQUIRE_GPU();
  const test::ScopedForce forced(set_attention_mma, static_cast<int>(cuda::AttentionMma::mma_sync));
  check_attention_path_against_reference();
}

TEST(GpuAttentionMma, WgmmaPathMatchesReference) {
  LOSA_REQUIRE_GPU();
  if (!cuda::attention_wgmma_available()) GTEST_SKIP() << "wgmma needs an sm_90 device and sm_90a code";
  const test::ScopedForce forced(set_attention_mma, static_cast<int>(cuda::AttentionMma::wgmma));
  ASSERT_TRUE(cuda::attention_uses_wgmma(16));
  check_attention_path_against_reference();
}

// wgmma forced on a batch of sequences of lengths 0, 1, 37, 300 and 1029 (empty, partial pages,
// several splits; 20 rows a CTA: the warpgroup's first warp has 16, its second 4, the other two
// none and multiply zero queries): equal to the same sequences one at a time, bit for bit, and
// to the reference.
TEST(GpuAttentionMma, WgmmaBatchEqualsSinglesAndReference) {
  LOSA_REQUIRE_GPU();
  if (!cuda::attention_wgmma_available()) GTEST_SKIP() << "wgmma needs an sm_90 device and sm_90a code";
  const test::ScopedForce forced(set_attention_mma, static_cast<int>(cuda::AttentionMma::wgmma));
  check_batch_against_singles_and_cpu(mode_of(Mode::dense));
  check_batch_against_singles_and_cpu(mode_of(Mode::quest, Attend::union_));
  check_batch_against_singles_and_cpu(mode_of(Mode::sparsed, Attend::union_));
}

}  // namespace
}  // namespace losa
