#include "backend_choice.hpp"

#include "cli_errors.hpp"
#ifdef LOSA_WITH_CUDA
#include "losa/runtime/cuda_backend.hpp"
#endif

namespace losa::tools {

std::string default_device() {
#ifdef LOSA_WITH_CUDA
  return runtime::cuda_backend_available() ? "cuda" : "cpu";
#else
  return "cpu";
#endif
}

void check_device_flag(const std::string& device) {
  if (device != "cpu" && device != "cuda") bad_flag("--device", "must be cpu or cuda, got '" + device + "'");
#ifdef LOSA_WITH_CUDA
  if (device == "cuda" && !runtime::cuda_backend_available())
    bad_flag("--device", "cuda: no CUDA device is present here; use --device cpu");
#else
  if (device == "cuda")
    bad_flag("--device", "cuda: this build has no CUDA backend (build with a CUDA toolkit, -DLOSA_CUDA=ON); "
                         "use --device cpu");
#endif
}

std::unique_ptr<runtime::ModelBackend> make_backend(const std::string& device, const runtime::Weights& weights,
                                                    int threads) {
  check_device_flag(device);
#ifdef LOSA_WITH_CUDA
  if (device == "cuda") return runtime::make_cuda_backend(weights);
#endif
  return runtime::make_cpu_backend(weights, threads);
}

}  // namespace losa::tools
