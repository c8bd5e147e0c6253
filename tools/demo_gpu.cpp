// The demo's GPU path: the same steps through the CUDA backend.
#include "demo.hpp"
#include "losa/cuda/device.hpp"
#include "losa/cuda/engine.hpp"
#include "losa/cuda/layer_step.hpp"

namespace losa::tools {

bool gpu_available(std::string* description) {
  if (cuda::device_count() == 0) return false;
  *description = cuda::describe_device(0);
  return true;
}

void check_gpu_supports(const BlockShape& shape, const PagedKVConfig& kv, const ModeConfig& mode) {
  const cuda::AttentionEngine validated(shape, kv, mode);  // its constructor allocates nothing
}

void run_mode_on_gpu(const PagedKVCache& cache, const BlockShape& shape, const ModeConfig& mode,
                     const std::vector<DemoStep>& steps, std::vector<std::vector<float>>* outputs,
                     std::vector<StepStats>* stats) {
  const DType dt = cache.config().dtype;
  cuda::DevicePagedKV kv(cache.config());
  kv.upload(cache, 0);
  cuda::LayerStepRunner runner(shape, cache.config(), mode, std::max(1, cache.num_pages(0)));
  const size_t q_elems = static_cast<size_t>(shape.num_rows()) * shape.head_dim;
  cuda::DeviceBuffer o(q_elems * dtype_bytes(dt));
  for (const DemoStep& step : steps) {
    cuda::DeviceBuffer q = cuda::upload_as(dt, step.q), k = cuda::upload_as(dt, step.k),
                       v = cuda::upload_as(dt, step.v);
    runner.run(kv, {q.data(), k.data(), v.data(), o.data()});
    stats->push_back(runner.last_stats());
    outputs->push_back(cuda::download_as(dt, o, q_elems));
  }
}

}  // namespace losa::tools
