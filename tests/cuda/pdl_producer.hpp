#pragma once
// A producer for the GPU tests of programmatic dependent launch (PDL): a kernel that lets a
// PDL-launched successor start at once, then spins for ~100 us and only then copies `bytes`
// (a multiple of 4) from src to dst. A successor that reads dst before waiting for its
// predecessor sees dst's old contents.
#include <cuda_runtime.h>

#include <cstddef>

namespace losa::test {

void launch_late_copy(const void* src, void* dst, size_t bytes, cudaStream_t stream);

}  // namespace losa::test
