// Per-row top-k page selection (radix select), and the union of the selections per KV head
// compacted into page lists.
//
// A CTA selects for one row: four 8-bit radix passes over order-preserving keys find the k-th
// largest score T; then, in page order, every score > T is taken and the lowest-index ties at
// T fill the rest (the CPU reference's tie rule). Each warp's 32 consecutive pages form one
// bitmap word (a ballot), so the row's bitmap is written whole with no atomics.
#include <cub/block/block_scan.cuh>

#include "common.cuh"
#include "launchers.hpp"

namespace losa::cuda {
namespace {

constexpr int kSelectThreads = 256;
constexpr int kUnionThreads = 1024;

// Larger float -> larger unsigned key.
__device__ __forceinline__ uint32_t ordered_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__global__ void __launch_bounds__(kSelectThreads) topk_kernel(const __grid_constant__ TopKParams p) {
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int hist[256];
  __shared__ uint32_t found_prefix;
  __shared__ int found_remaining;

  const int row = blockIdx.x, kvh = blockIdx.y, tid = threadIdx.x;
  const int valid_rows = p.active_count ? *p.active_count * p.group : p.rows_per_kv_head;
  if (row >= valid_rows) return;
  const size_t row_index = static_cast<size_t>(kvh) * p.rows_per_kv_head + row;
  const float* scores = p.scores + row_index * p.score_stride;
  const int n = p.num_pages;
  const int candidates = p.keep_last ? n - 1 : n;
  const bool take_all = p.k >= candidates;

  uint32_t threshold = 0, prefix_mask = 0;
  int ties_to_take = 0;
  if (!take_all) {
    int remaining = p.k;
    for (int pass = 0; pass < 4; ++pass) {
      const int shift = 24 - 8 * pass;
      hist[tid] = 0;  // kSelectThreads == 256 bins
      __syncthreads();
      for (int i = tid; i < candidates; i += kSelectThreads) {
        const uint32_t key = ordered_key(scores[i]);
        if ((key & prefix_mask) == threshold) atomicAdd(&hist[(key >> shift) & 255], 1);
      }
      __syncthreads();
      // Thread i holds digit 255 - i: its inclusive sum counts keys with digit >= 255 - i.
      const int count = hist[255 - tid];
      int at_or_above;
      Scan(scan_storage).InclusiveSum(count, at_or_above);
      if (at_or_above >= remaining && at_or_above - count < remaining) {
        found_prefix = threshold | (static_cast<uint32_t>(255 - tid) << shift);
        found_remaining = remaining - (at_or_above - count);
      }
      __syncthreads();
      threshold = found_prefix;
      remaining = found_remaining;
      prefix_mask |= 255u << shift;
    }
    ties_to_take = remaining;
  }

  uint8_t* flags = p.union_flags ? p.union_flags + static_cast<size_t>(kvh) * n : nullptr;
  uint32_t* bits = p.row_bits ? p.row_bits + row_index * p.words : nullptr;
  int ties_taken = 0;
  for (int base = 0; base < n; base += kSelectThreads) {
    const int i = base + tid;
    const bool candidate = i < candidates;
    const uint32_t key = candidate ? ordered_key(scores[i]) : 0u;
    const bool tie = candidate && !take_all && key == threshold;
    int tie_rank, ties_here;
    Scan(scan_storage).ExclusiveSum(tie ? 1 : 0, tie_rank, ties_here);
    bool chosen = take_all ? candidate
                           : candidate && (key > threshold || (tie && ties_taken + tie_rank < ties_to_take));
    if (p.keep_last && i == n - 1) chosen = true;
    ties_taken += ties_here;
    if (flags && chosen) flags[i] = 1;
    const uint32_t word = __ballot_sync(0xffffffffu, chosen);
    const int word_start = base + (tid / 32) * 32;
    if (bits && tid % 32 == 0 && word_start < n) bits[word_start / 32] = word;
    __syncthreads();  // scan_storage is reused
  }
}

__global__ void __launch_bounds__(kUnionThreads) union_kernel(const __grid_constant__ UnionParams p) {
  using Scan = cub::BlockScan<int, kUnionThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const int kvh = blockIdx.x;
  uint8_t* flags = p.flags + static_cast<size_t>(kvh) * p.num_pages;
  int32_t* pages = p.pages + static_cast<size_t>(kvh) * p.list_stride;
  int written = 0;
  for (int base = 0; base < p.num_pages; base += kUnionThreads) {
    const int i = base + threadIdx.x;
    const int flag = i < p.num_pages ? flags[i] : 0;
    int pos, total;
    Scan(scan_storage).ExclusiveSum(flag, pos, total);
    if (flag) {
      pages[written + pos] = i;
      flags[i] = 0;  // clean for the next step
    }
    written += total;
    __syncthreads();
  }
  if (threadIdx.x == 0) p.counts[kvh] = written;
}

}  // namespace

void launch_topk(const TopKParams& p, int num_kv_heads, cudaStream_t stream) {
  if (p.num_pages == 0 || p.rows_per_kv_head == 0) return;
  topk_kernel<<<dim3(p.rows_per_kv_head, num_kv_heads), kSelectThreads, 0, stream>>>(p);
  check_launch("topk_kernel");
}

void launch_union(const UnionParams& p, int num_kv_heads, cudaStream_t stream) {
  union_kernel<<<num_kv_heads, kUnionThreads, 0, stream>>>(p);
  check_launch("union_kernel");
}

}  // namespace losa::cuda
