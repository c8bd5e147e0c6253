#include "../../cuda/check.hpp"
#include "../../cuda/launch.cuh"
#include "model_kernels.hpp"

namespace losa::runtime::cuda {
namespace {

__device__ __forceinline__ float block_reduce_sum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < (blockDim.x + 31) / 32; ++w) total += shared[w];
  __syncthreads();
  return total;
}

__global__ void embed_kernel(const bf16* table, const int32_t* tokens, int hidden, float* x) {
  const int64_t r = blockIdx.x;
  const bf16* src = table + static_cast<int64_t>(tokens[r]) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) x[r * hidden + i] = __bfloat162float(src[i]);
}

// rms_norm and silu_mul feed the decode GEMMs: they let them launch at once (PDL; the GEMM
// streams weights until it waits for this grid to finish before reading its output).
__global__ void rms_norm_kernel(const float* x, const bf16* w, int dim, float eps, bf16* y) {
  losa::cuda::allow_successor();
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i] * xr[i];
  const float inv_rms = rsqrtf(block_reduce_sum(sum, shared) / dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    y[r * dim + i] = __float2bfloat16_rn(xr[i] * inv_rms * __bfloat162float(w[i]));
}

// One CTA per row, one warp per head at a time: the head's values go to shared memory (the
// rotation pairs i and i + D/2 live in different lanes), the warp reduces the RMSNorm, then
// each lane rotates its pairs.
__global__ void qk_norm_rope_kernel(const __grid_constant__ QkNormRope p) {
  extern __shared__ float head_values[];  // [warps, D]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const int heads = p.num_q_heads + p.num_kv_heads, D = p.head_dim, half = D / 2;
  const int64_t r = blockIdx.x;
  const int position = p.kv_len[r / p.rows_per_seq] + static_cast<int>(r % p.rows_per_seq);
  float* hv = head_values + warp * D;
  for (int h = warp; h < heads; h += warps) {
    bf16* x = p.qkv + r * static_cast<int64_t>(p.num_q_heads + 2 * p.num_kv_heads) * D + static_cast<int64_t>(h) * D;
    const bf16* w = h < p.num_q_heads ? p.q_norm : p.k_norm;
    float sum = 0.0f;
    for (int i = lane; i < D; i += 32) {
      const float v = __bfloat162float(x[i]);
      hv[i] = v;
      sum += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float inv_rms = rsqrtf(sum / D + p.eps);
    __syncwarp();
    for (int i = lane; i < D; i += 32) hv[i] = hv[i] * inv_rms * __bfloat162float(w[i]);
    __syncwarp();
    for (int i = lane; i < half; i += 32) {
      double s, c;
      sincos(static_cast<double>(position) * p.inv_freq[i], &s, &c);
      c *= p.attention_factor;
      s *= p.attention_factor;
      const double a = hv[i], b = hv[i + half];
      x[i] = __float2bfloat16_rn(static_cast<float>(a * c - b * s));
      x[i + half] = __float2bfloat16_rn(static_cast<float>(b * c + a * s));
    }
    __syncwarp();
  }
}

__global__ void silu_mul_kernel(const bf16* gu, int intermediate, bf16* act) {
  losa::cuda::allow_successor();
  const int64_t r = blockIdx.y;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < intermediate; i += gridDim.x * blockDim.x) {
    const float g = __bfloat162float(gu[r * 2 * intermediate + i]);
    const float u = __bfloat162float(gu[r * 2 * intermediate + intermediate + i]);
    act[r * intermediate + i] = __float2bfloat16_rn(g / (1.0f + expf(-g)) * u);
  }
}

__global__ void greedy_kernel(const float* logits, int64_t row_size, const int64_t* candidates,
                              const uint8_t* seq_mask, int rows_per_seq, int32_t* tokens, float* confidence) {
  __shared__ float best_value[32];
  __shared__ int best_index[32];
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  if (seq_mask && !seq_mask[r / rows_per_seq]) return;
  const float* row = logits + r * row_size;
  const int64_t vocab = min(row_size, *candidates);
  float best = -INFINITY;
  int index = 0x7fffffff;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = row[i];
    if (v > best || (v == best && i < index)) {  // ties to the lowest id
      best = v;
      index = static_cast<int>(i);
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, index, o);
    if (ov > best || (ov == best && oi < index)) {
      best = ov;
      index = oi;
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) {
    best_value[warp] = best;
    best_index[warp] = index;
  }
  __syncthreads();
  best = best_value[0];
  index = best_index[0];
  for (int w = 1; w < warps; ++w)
    if (best_value[w] > best || (best_value[w] == best && best_index[w] < index)) {
      best = best_value[w];
      index = best_index[w];
    }
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(row[i] - best);
  sum = block_reduce_sum(sum, shared);
  if (threadIdx.x == 0) {
    tokens[r] = index;
    confidence[r] = 1.0f / sum;
  }
}

void check(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw BackendError(std::string("launch of ") + kernel + " failed: " + cudaGetErrorString(e));
}

}  // namespace

void launch_embed(const bf16* table, const int32_t* tokens, int64_t rows, int hidden, float* x, cudaStream_t stream) {
  if (rows == 0) return;
  embed_kernel<<<static_cast<unsigned>(rows), 256, 0, stream>>>(table, tokens, hidden, x);
  check("embed_kernel");
}

void launch_rms_norm(const float* x, const bf16* w, int64_t rows, int dim, float eps, bf16* y, cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_kernel<<<static_cast<unsigned>(rows), 256, 0, stream>>>(x, w, dim, eps, y);
  check("rms_norm_kernel");
}

void launch_qk_norm_rope(const QkNormRope& p, int64_t rows, cudaStream_t stream) {
  if (rows == 0) return;
  const int warps = 8;
  qk_norm_rope_kernel<<<static_cast<unsigned>(rows), warps * 32, warps * p.head_dim * sizeof(float), stream>>>(p);
  check("qk_norm_rope_kernel");
}

void launch_silu_mul(const bf16* gate_up, int64_t rows, int intermediate, bf16* act, cudaStream_t stream) {
  if (rows == 0) return;
  const dim3 grid((intermediate + 255) / 256, static_cast<unsigned>(rows));
  silu_mul_kernel<<<grid, 256, 0, stream>>>(gate_up, intermediate, act);
  check("silu_mul_kernel");
}

void launch_greedy(const float* logits, int64_t rows, int64_t vocab, const int64_t* candidates,
                   const uint8_t* seq_mask, int rows_per_seq, int32_t* tokens, float* confidence, cudaStream_t stream) {
  if (rows == 0) return;
  greedy_kernel<<<static_cast<unsigned>(rows), 1024, 0, stream>>>(logits, vocab, candidates, seq_mask, rows_per_seq,
                                                                   tokens, confidence);
  check("greedy_kernel");
}

}  // namespace losa::runtime::cuda
