#pragma once
// The --device flag of the model commands (generate, eval): cpu or cuda, checked against this
// build and machine, and the backend it names.
#include <memory>
#include <string>

#include "losa/runtime/backend.hpp"
#include "losa/runtime/weights.hpp"

namespace losa::tools {

/// "cuda" where this build has the CUDA backend and a device is present, else "cpu".
std::string default_device();
/// FlagError (naming --device) unless `device` is cpu, or cuda where it can run.
void check_device_flag(const std::string& device);
std::unique_ptr<runtime::ModelBackend> make_backend(const std::string& device, const runtime::Weights& weights,
                                                    int threads);

}  // namespace losa::tools
