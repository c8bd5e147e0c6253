// The single-sequence runner: an AttentionEngine planned for one sequence, with its own
// workspace and layer state.
#include "common.cuh"
#include "losa/cuda/layer_step.hpp"
#include "workspace_layout.hpp"

namespace losa::cuda {

struct LayerStepRunner::Impl {
  AttentionEngine engine;
  DeviceBuffer workspace, state_storage;
  LayerState state;
  int step = 0;
  Impl(const BlockShape& shape, const PagedKVConfig& kv, const ModeConfig& mode, const EngineOptions& options)
      : engine(shape, kv, mode, options) {}
};

namespace {
EngineOptions keeping_prefix_state(EngineOptions options) {
  options.store_prefix_state = true;
  return options;
}
}  // namespace

LayerStepRunner::LayerStepRunner(const BlockShape& shape, const PagedKVConfig& kv_config, const ModeConfig& mode,
                                 int max_prefix_pages, const EngineOptions& options)
    : impl_(std::make_unique<Impl>(shape, kv_config, mode, keeping_prefix_state(options))) {
  LOSA_CHECK_ARG(max_prefix_pages > 0 && max_prefix_pages <= kv_config.max_pages, "max_prefix_pages",
                 "must be in [1, max_pages=", kv_config.max_pages, "], got ", max_prefix_pages);
  Impl& s = *impl_;
  s.engine.plan(1, max_prefix_pages);
  s.workspace = allocate_for_engine(s.engine.workspace_bytes());
  s.engine.bind_workspace(s.workspace.data(), s.workspace.bytes());
  s.state_storage = allocate_for_engine(s.engine.layer_state_bytes());
  s.state = s.engine.make_layer_state(s.state_storage.data(), s.state_storage.bytes());
  synchronize(nullptr);
}

LayerStepRunner::~LayerStepRunner() = default;
LayerStepRunner::LayerStepRunner(LayerStepRunner&&) noexcept = default;
LayerStepRunner& LayerStepRunner::operator=(LayerStepRunner&&) noexcept = default;

void LayerStepRunner::begin_block() { impl_->step = 0; }
int LayerStepRunner::step() const { return impl_->step; }
const ModeConfig& LayerStepRunner::mode() const { return impl_->engine.mode(); }
const AttentionEngine& LayerStepRunner::engine() const { return impl_->engine; }
void LayerStepRunner::set_stage_hook(std::function<void(const char*)> hook) { impl_->engine.set_stage_hook(std::move(hook)); }

void LayerStepRunner::run(const DevicePagedKV& kv, const DeviceStepIO& io, Stream stream) {
  Impl& s = *impl_;
  StepIO step_io;
  step_io.q = TokenTensor{io.q, 0};
  step_io.k = TokenTensor{io.k_blk, 0};
  step_io.v = TokenTensor{io.v_blk, 0};
  step_io.o = io.o;
  s.engine.run(kv.view(), step_io, s.state, s.step, stream);
  ++s.step;
}

StepStats LayerStepRunner::last_stats(Stream stream) const { return impl_->engine.last_stats(0, stream); }
StepDecisions LayerStepRunner::last_decisions(Stream stream) const {
  return impl_->engine.last_decisions(0, impl_->state, stream);
}

std::vector<float> LayerStepRunner::prefix_lse(Stream stream) const {
  const Impl& s = *impl_;
  const BlockShape& shape = s.engine.shape();
  std::vector<float> lse(shape.num_rows());
  const LayerStateLayout st = layer_state_layout(shape, s.engine.kv_config(), s.engine.mode(), s.engine.current_plan(),
                                                 /*store_prefix_state=*/true);
  LOSA_CUDA_CHECK(cudaMemcpyAsync(lse.data(), static_cast<const char*>(s.state.device) + st.prefix_lse,
                                  lse.size() * 4, cudaMemcpyDeviceToHost, stream));
  synchronize(stream);
  return lse;
}

}  // namespace losa::cuda
