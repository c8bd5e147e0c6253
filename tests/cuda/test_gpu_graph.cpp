// A whole layer-step captured in a CUDA graph and replayed with new inputs in the same buffers,
// for every mode, against the CPU reference.
#include <cuda_runtime.h>

#include "layer_step_harness.hpp"
#include "losa/synthetic.hpp"

namespace losa {
namespace {

void capture_and_replay(const ModeConfig& mode) {
  SyntheticConfig wc;
  wc.shape = BlockShape{16, 32, 8, 128};
  wc.prefix_len = 5000;
  wc.seed = 23;
  SyntheticWorkload w(wc);
  const BlockShape& shape = wc.shape;
  const PagedKVCache& cache = w.cache();
  const DType dt = cache.config().dtype;
  cuda::DevicePagedKV dev(cache.config());
  dev.upload(cache, 0);
  cuda::LayerStepRunner runner(shape, cache.config(), mode, cache.num_pages(0));
  const size_t qn = static_cast<size_t>(shape.num_rows()) * shape.head_dim;
  const size_t kn = static_cast<size_t>(shape.block_size) * shape.num_kv_heads * shape.head_dim;
  cuda::DeviceBuffer dq(qn * 2), dk(kn * 2), dv(kn * 2), d_o(qn * 2);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  auto upload_inputs = [&] {
    dq = cuda::upload_as(dt, w.q());
    dk = cuda::upload_as(dt, w.k_block());
    dv = cuda::upload_as(dt, w.v_block());
  };
  // Every copy the graph depends on is ordered on its (non-blocking) stream: a plain cudaMemcpy
  // on the legacy stream may still be in flight when the graph starts (it was, once, under a
  // second process's load: the poison landed after the output).
  auto copy_inputs = [&] {  // into the buffers the graph was captured with
    auto q = cuda::upload_as(dt, w.q()), k = cuda::upload_as(dt, w.k_block()), v = cuda::upload_as(dt, w.v_block());
    ASSERT_EQ(cudaMemcpyAsync(dq.data(), q.data(), qn * 2, cudaMemcpyDeviceToDevice, stream), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(dk.data(), k.data(), kn * 2, cudaMemcpyDeviceToDevice, stream), cudaSuccess);
    ASSERT_EQ(cudaMemcpyAsync(dv.data(), v.data(), kn * 2, cudaMemcpyDeviceToDevice, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);  // before q, k, v are freed
  };
  LayerBlockState cpu_state;
  std::vector<float> cpu_o(qn);
  // Steps run directly until the step kind that repeats (LoSA t > 0, SparseD after its switch).
  const int warm = mode.mode == Mode::sparsed ? sparsed_full_steps(mode) : 1;
  for (int t = 0; t < warm; ++t) {
    w.next_step();
    upload_inputs();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the uploads ran on the legacy stream
    runner.run(dev, {dq.data(), dk.data(), dv.data(), d_o.data()}, stream);
    const StepDecisions gpu = runner.last_decisions(stream);
    layer_step(cache, 0, shape, mode, w.q().data(), w.k_block().data(), w.v_block().data(), cpu_state, cpu_o.data(), &gpu);
  }
  w.next_step();
  copy_inputs();
  cudaGraph_t graph;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  runner.run(dev, {dq.data(), dk.data(), dv.data(), d_o.data()}, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int replay = 0; replay < 4; ++replay) {
    if (replay > 0) {
      w.next_step();
      copy_inputs();
    }
    const std::vector<uint16_t> poison(qn, 0x7fc0);
    ASSERT_EQ(cudaMemcpyAsync(d_o.data(), poison.data(), qn * 2, cudaMemcpyHostToDevice, stream), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    const StepDecisions gpu = runner.last_decisions(stream);
    layer_step(cache, 0, shape, mode, w.q().data(), w.k_block().data(), w.v_block().data(), cpu_state, cpu_o.data(), &gpu);
    const auto gpu_o = cuda::download_as(dt, d_o, qn);
    EXPECT_LT(test::rel_l2(gpu_o, cpu_o), 1e-2) << mode_name(mode.mode) << " replay " << replay;
    if (mode.mode == Mode::losa) EXPECT_LT(gpu.tokens.size(), 16u) << "LoSA steps recompute a few tokens";
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

ModeConfig mode_of(Mode m) {
  ModeConfig c;
  c.mode = m;
  c.budget_tokens = 256;
  c.steps_per_block = 8;
  return c;
}

TEST(GpuGraph, DenseStepReplays) { LOSA_REQUIRE_GPU(); capture_and_replay(mode_of(Mode::dense)); }
TEST(GpuGraph, QuestStepReplays) { LOSA_REQUIRE_GPU(); capture_and_replay(mode_of(Mode::quest)); }
TEST(GpuGraph, LosaStepReplays) { LOSA_REQUIRE_GPU(); capture_and_replay(mode_of(Mode::losa)); }
TEST(GpuGraph, SparsedStepReplays) { LOSA_REQUIRE_GPU(); capture_and_replay(mode_of(Mode::sparsed)); }

}  // namespace
}  // namespace losa
