#include "../../cuda/check.hpp"
#include "../../cuda/dispatch.cuh"
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

// The same for rows of up to 1024 * kVecs floats (dim % 4 == 0, aligned): every thread's loads
// are issued at once and its values stay in registers, one memory round trip a row where the
// strided loop above waits for each of its loads in turn (12 us a norm at 64 x 4096 on the H100).
template <int kVecs>
__global__ void rms_norm_vec4_kernel(const float* x, const bf16* w, int dim, float eps, bf16* y) {
  losa::cuda::allow_successor();
  __shared__ float shared[32];
  const int64_t r = blockIdx.x;
  const int vecs = dim / 4;
  const float4* xr = reinterpret_cast<const float4*>(x + r * dim);
  float4 v[kVecs];
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < vecs) {
      v[j] = xr[i];
      sum += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
    }
  }
  const float inv_rms = rsqrtf(block_reduce_sum(sum, shared) / dim + eps);
  const uint2* wv = reinterpret_cast<const uint2*>(w);
  uint2* yr = reinterpret_cast<uint2*>(y + r * dim);
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < vecs) {
      const uint2 wq = wv[i];
      const float2 w01 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&wq.x));
      const float2 w23 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&wq.y));
      const __nv_bfloat162 y01 = __floats2bfloat162_rn(v[j].x * inv_rms * w01.x, v[j].y * inv_rms * w01.y);
      const __nv_bfloat162 y23 = __floats2bfloat162_rn(v[j].z * inv_rms * w23.x, v[j].w * inv_rms * w23.y);
      uint2 out;
      out.x = *reinterpret_cast<const unsigned*>(&y01);
      out.y = *reinterpret_cast<const unsigned*>(&y23);
      yr[i] = out;
    }
  }
}

// One warp per head, a CTA's warps on heads of one row: the row's angles (one position) are
// computed once per CTA, in double, into shared memory. Lane l holds elements l + 32 j, so the
// rotation partner (i + D/2) of each element it holds in the first half is its own.
template <int D>
__global__ void qk_norm_rope_kernel(const __grid_constant__ QkNormRope p) {
  constexpr int kPerLane = D / 32, half = D / 2;
  __shared__ double cos_sin[D];  // [half] cos, then [half] sin, scaled by attention_factor
  const int64_t r = blockIdx.x;
  const int position = p.kv_len[r / p.rows_per_seq] + static_cast<int>(r % p.rows_per_seq);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    double s, c;
    sincos(static_cast<double>(position) * p.inv_freq[i], &s, &c);
    cos_sin[i] = c * p.attention_factor;
    cos_sin[half + i] = s * p.attention_factor;
  }
  __syncthreads();
  const int lane = threadIdx.x % 32, h = blockIdx.y * (blockDim.x / 32) + threadIdx.x / 32;
  if (h >= p.num_q_heads + p.num_kv_heads) return;
  bf16* x = p.qkv + r * static_cast<int64_t>(p.num_q_heads + 2 * p.num_kv_heads) * D + static_cast<int64_t>(h) * D;
  const bf16* w = h < p.num_q_heads ? p.q_norm : p.k_norm;
  float v[kPerLane];
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    v[j] = __bfloat162float(x[lane + 32 * j]);
    sum += v[j] * v[j];
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float inv_rms = rsqrtf(sum / D + p.eps);
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) v[j] = v[j] * inv_rms * __bfloat162float(w[lane + 32 * j]);
#pragma unroll
  for (int j = 0; j < kPerLane / 2; ++j) {
    const int i = lane + 32 * j;
    const double c = cos_sin[i], s = cos_sin[half + i], a = v[j], b = v[j + kPerLane / 2];
    x[i] = __float2bfloat16_rn(static_cast<float>(a * c - b * s));
    x[i + half] = __float2bfloat16_rn(static_cast<float>(b * c + a * s));
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

// Eight elements a thread in 16-byte loads and stores (intermediate % 8 == 0, aligned).
__global__ void silu_mul_vec8_kernel(const bf16* gu, int intermediate, bf16* act) {
  losa::cuda::allow_successor();
  const int64_t r = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= intermediate / 8) return;
  const uint4 gq = reinterpret_cast<const uint4*>(gu + r * 2 * intermediate)[i];
  const uint4 uq = reinterpret_cast<const uint4*>(gu + r * 2 * intermediate + intermediate)[i];
  const auto* g2 = reinterpret_cast<const __nv_bfloat162*>(&gq);
  const auto* u2 = reinterpret_cast<const __nv_bfloat162*>(&uq);
  uint4 out;
  auto* o2 = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 g = __bfloat1622float2(g2[j]), u = __bfloat1622float2(u2[j]);
    o2[j] = __floats2bfloat162_rn(g.x / (1.0f + expf(-g.x)) * u.x, g.y / (1.0f + expf(-g.y)) * u.y);
  }
  reinterpret_cast<uint4*>(act + r * intermediate)[i] = out;
}

// A running (max, index, sum of exp(v - max)) per thread, merged across threads: one pass over
// the row (an online softmax) where a max pass and a sum pass read it twice.
struct ArgmaxSum {
  float best = -INFINITY;
  int index = 0x7fffffff;
  float sum = 0.0f;
};

__device__ __forceinline__ float rescaled(float sum, float from, float to) {
  return from == to ? sum : sum * expf(from - to);  // equal infinities: no NaN from inf - inf
}

__device__ __forceinline__ void take(ArgmaxSum& a, float v, int i) {
  if (v > a.best) {
    a.sum = rescaled(a.sum, a.best, v) + 1.0f;
    a.best = v;
    a.index = i;
  } else {
    a.sum += v == a.best ? 1.0f : expf(v - a.best);  // equal infinities: exp(0), not exp(inf - inf)
    if (v == a.best && i < a.index) a.index = i;     // ties to the lowest id
  }
}

__device__ __forceinline__ ArgmaxSum merged(const ArgmaxSum& a, const ArgmaxSum& b) {
  ArgmaxSum m;
  const bool b_wins = b.best > a.best || (b.best == a.best && b.index < a.index);
  m.best = b_wins ? b.best : a.best;
  m.index = b_wins ? b.index : a.index;
  m.sum = rescaled(a.sum, a.best, m.best) + rescaled(b.sum, b.best, m.best);
  return m;
}

// kVec4: rows of float4 (row_size % 4 == 0, aligned), four loads in flight a thread.
template <bool kVec4>
__global__ void greedy_kernel(const float* logits, int64_t row_size, const int64_t* candidates,
                              const uint8_t* seq_mask, int rows_per_seq, int32_t* tokens, float* confidence) {
  __shared__ ArgmaxSum partial[32];
  const int64_t r = blockIdx.x;
  if (seq_mask && !seq_mask[r / rows_per_seq]) return;
  const float* row = logits + r * row_size;
  const int64_t vocab = min(row_size, *candidates);
  ArgmaxSum a;
  int64_t scalar_from = 0;
  if (kVec4) {
    const float4* row4 = reinterpret_cast<const float4*>(row);
    const int64_t vecs = vocab / 4, T = blockDim.x;
    for (int64_t j0 = threadIdx.x; j0 < vecs; j0 += 4 * T) {
      float4 q[4];
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (j0 + u * T < vecs) q[u] = row4[j0 + u * T];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int64_t j = j0 + u * T;
        if (j >= vecs) break;
        const int i = static_cast<int>(4 * j);
        take(a, q[u].x, i);
        take(a, q[u].y, i + 1);
        take(a, q[u].z, i + 2);
        take(a, q[u].w, i + 3);
      }
    }
    scalar_from = vecs * 4;
  }
  for (int64_t i = scalar_from + threadIdx.x; i < vocab; i += blockDim.x) take(a, row[i], static_cast<int>(i));
  for (int o = 16; o > 0; o >>= 1) {
    ArgmaxSum other;
    other.best = __shfl_xor_sync(0xffffffffu, a.best, o);
    other.index = __shfl_xor_sync(0xffffffffu, a.index, o);
    other.sum = __shfl_xor_sync(0xffffffffu, a.sum, o);
    a = merged(a, other);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) partial[warp] = a;
  __syncthreads();
  if (threadIdx.x == 0) {
    ArgmaxSum total = partial[0];
    for (int w = 1; w < warps; ++w) total = merged(total, partial[w]);
    tokens[r] = total.index;
    confidence[r] = 1.0f / total.sum;
  }
}

template <int D>
void launch_qk_norm_rope_instance(const QkNormRope& p, dim3 grid, int threads, cudaStream_t stream) {
  qk_norm_rope_kernel<D><<<grid, threads, 0, stream>>>(p);
}

using losa::cuda::is_aligned;

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
  const int threads = 256;
  const bool vec = dim % 4 == 0 && is_aligned(x, 16) && is_aligned(w, 8) && is_aligned(y, 8);
  if (vec && dim <= 4 * threads * 4)
    rms_norm_vec4_kernel<4><<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, w, dim, eps, y);
  else if (vec && dim <= 4 * threads * 8)
    rms_norm_vec4_kernel<8><<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, w, dim, eps, y);
  else
    rms_norm_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, w, dim, eps, y);
  check("rms_norm_kernel");
}

void launch_qk_norm_rope(const QkNormRope& p, int64_t rows, cudaStream_t stream) {
  if (rows == 0) return;
  const int warps = 8, heads = p.num_q_heads + p.num_kv_heads;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>((heads + warps - 1) / warps));
  LOSA_DISPATCH_HEAD_DIM(p.head_dim, launch_qk_norm_rope_instance, p, grid, warps * 32, stream);
  check("qk_norm_rope_kernel");
}

void launch_silu_mul(const bf16* gate_up, int64_t rows, int intermediate, bf16* act, cudaStream_t stream) {
  if (rows == 0) return;
  if (intermediate % 8 == 0 && is_aligned(gate_up, 16) && is_aligned(act, 16)) {
    const dim3 grid((intermediate / 8 + 127) / 128, static_cast<unsigned>(rows));
    silu_mul_vec8_kernel<<<grid, 128, 0, stream>>>(gate_up, intermediate, act);
  } else {
    const dim3 grid((intermediate + 255) / 256, static_cast<unsigned>(rows));
    silu_mul_kernel<<<grid, 256, 0, stream>>>(gate_up, intermediate, act);
  }
  check("silu_mul_kernel");
}

void launch_greedy(const float* logits, int64_t rows, int64_t vocab, const int64_t* candidates,
                   const uint8_t* seq_mask, int rows_per_seq, int32_t* tokens, float* confidence, cudaStream_t stream) {
  if (rows == 0) return;
  if (vocab % 4 == 0 && is_aligned(logits, 16))
    greedy_kernel<true><<<static_cast<unsigned>(rows), 1024, 0, stream>>>(logits, vocab, candidates, seq_mask,
                                                                        rows_per_seq, tokens, confidence);
  else
    greedy_kernel<false><<<static_cast<unsigned>(rows), 1024, 0, stream>>>(logits, vocab, candidates, seq_mask,
                                                                         rows_per_seq, tokens, confidence);
  check("greedy_kernel");
}

}  // namespace losa::runtime::cuda
