#include <algorithm>

#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "paged_attention.cuh"

namespace losa::cuda {

int choose_num_splits(int ctas_per_split, int max_tiles_per_kv_head, int num_sms) {
  const int want = ceil_div(2 * num_sms, std::max(1, ctas_per_split));
  return std::max(1, std::min(want, std::max(1, max_tiles_per_kv_head)));
}

namespace {
template <typename T, int D>
void launch(const PagedAttentionParams& p, int row_tiles, cudaStream_t stream) {
  using Cfg = PagedAttentionConfig<T, D>;
  // Above 48 KB a kernel needs an explicit opt-in; once per instance, outside any capture.
  static const cudaError_t attr = cudaFuncSetAttribute(
      paged_attention_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  LOSA_CUDA_CHECK(attr);
  const dim3 grid(row_tiles, p.num_splits, p.kv.num_kv_heads);
  launch_kernel(paged_attention_kernel<T, D>, grid, Cfg::kThreads, Cfg::kSmemBytes, stream, p);
  check_launch("paged_attention_kernel");
}
}  // namespace

void launch_paged_attention(DType dtype, int head_dim, const PagedAttentionParams& p,
                            int row_tiles, cudaStream_t stream) {
  LOSA_DISPATCH_DTYPE_HEAD_DIM(dtype, head_dim, launch, p, row_tiles, stream);
}

}  // namespace losa::cuda
