#pragma once
// The CUDA backend of the model runtime: the same ModelBackend as the CPU reference
// (backend.hpp), on the GPU. bf16 weights and GEMMs with fp32 accumulation (cuBLAS), an fp32
// residual stream, small fused kernels for norms, q/k-norm + RoPE and SwiGLU, K/V in a paged
// DeviceKVCache of every layer, attention through the AttentionEngine in any mode, each layer
// with its own state. A whole denoising step (or commit) of every layer is enqueued without
// host synchronisation and, by default, captured once per step kind into a CUDA graph that
// replays block after block (lengths, masks and tokens are read from device memory).
#include <functional>
#include <memory>

#include "losa/runtime/backend.hpp"

// cudaStream_t as cuda_runtime.h declares it, without needing the CUDA headers here.
struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace losa::runtime {

struct CudaBackendOptions {
  bool use_graphs = true;  ///< capture each step kind once and replay it; false: plain launches
  /// false: skip the attention of denoising steps and commits (benchmarks only: the time of a
  /// step without its attention; the outputs are then meaningless).
  bool attention = true;
  /// Benchmarks only: called on the host before each kernel group a step or commit enqueues
  /// ("qkv", "attention.topk", ... and "done" at the end), while the step is captured (or
  /// launched, without graphs). A hook that records an external event on the stream it is
  /// given puts event-record nodes in the graph: the time between two marks is the named
  /// group's, launch gaps included.
  std::function<void(const char* stage, cudaStream_t stream)> stage_hook;
};

/// True when this build has the CUDA backend and a CUDA device is present.
bool cuda_backend_available();

/// The CUDA backend over `weights` (uploaded once; `weights` need not outlive it). Throws
/// ArgumentError when the model does not fit the GPU (naming what it needs) or a shape is not
/// supported (head_dim 64/128, block size <= 64), BackendError on a CUDA failure.
/// replay_next() is not supported (the CPU reference replays this backend's decisions).
std::unique_ptr<ModelBackend> make_cuda_backend(const Weights& weights, const CudaBackendOptions& options = {});

}  // namespace losa::runtime
