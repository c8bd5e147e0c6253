#pragma once
// Which CUDA device is present. Safe to call on a machine without a GPU or driver.
#include <string>

namespace losa::cuda {

/// Number of usable CUDA devices (0 without a GPU or driver).
int device_count();

/// Streaming multiprocessors of the current device; throws BackendError where there is none.
int multiprocessor_count();

/// Shared memory one CTA may use on the current device with the opt-in (static and dynamic).
int shared_memory_per_block_optin();

/// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 50 MiB L2" for device `device`; empty if none.
std::string describe_device(int device = 0);

}  // namespace losa::cuda
