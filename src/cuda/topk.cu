// Per-row top-k page selection (radix select), and the union of the selections per (sequence,
// KV head) compacted into page lists: QUEST's rows, and SparseD's switch step, where the rows
// are the query heads of a group.
//
// A CTA selects for one row. Its scores are staged in shared memory as order-preserving keys;
// 8-bit radix passes over key - min (at most four) find the k-th largest key T. Every key > T is taken; of the keys
// equal to T the lowest indices fill the rest (the CPU reference's tie rule). Exact ties are
// rare, so when all of them are taken the selection is a plain compare; otherwise an ordered
// scan ranks them. Each warp's 32 consecutive pages form one bitmap word (a ballot), so the
// row's bitmap is written whole with no atomics.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <algorithm>

#include "common.cuh"
#include "kv_view.cuh"
#include "launch.cuh"
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
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  allow_successor();
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int hist[256];
  __shared__ uint32_t found_prefix;
  __shared__ int found_remaining, found_count;
  extern __shared__ uint32_t keys[];  // [candidates]

  // Grid (rows, Hk, S): head_slot = seq * Hk + kv_head indexes the per-(sequence, KV head) arrays.
  const int row = blockIdx.x, seq = blockIdx.z, tid = threadIdx.x;
  const int head_slot = seq * gridDim.y + blockIdx.y;
  const int valid_rows = p.active_count ? p.active_count[seq] * p.group : p.rows_per_kv_head;
  if (row >= valid_rows || (p.seq_mask && !p.seq_mask[seq])) return;
  const size_t row_index = static_cast<size_t>(head_slot) * p.rows_per_kv_head + row;
  const float* scores = p.scores + row_index * p.score_stride;
  const int n = (p.kv_len[seq] + p.page_size - 1) / p.page_size;
  const int candidates = p.keep_last ? max(n - 1, 0) : n;
  const int k = p.select_fraction > 0.0 ? min(n, max(1, static_cast<int>(ceil(p.select_fraction * n - 1e-9)))) : p.k;
  const bool take_all = k >= candidates;

  uint32_t threshold = 0;
  int ties_to_take = 0;
  bool ordered_ties = false;
  if (!take_all) {
    // Radix select on key - min_key, from the highest bit of the range down, 8 bits a pass:
    // a row's scores share their top bits, so digits of the raw key would pile into one or two
    // histogram bins (serialised atomics); offset by the minimum they spread out.
    using Reduce = cub::BlockReduce<uint32_t, kSelectThreads>;
    __shared__ typename Reduce::TempStorage reduce_storage;
    __shared__ uint32_t key_min, key_max;
    uint32_t lo = 0xffffffffu, hi = 0u;
    for (int i = tid; i < candidates; i += kSelectThreads) {
      const uint32_t key = ordered_key(scores[i]);
      keys[i] = key;
      lo = min(lo, key);
      hi = max(hi, key);
    }
    lo = Reduce(reduce_storage).Reduce(lo, [](uint32_t a, uint32_t b) { return min(a, b); });
    __syncthreads();
    hi = Reduce(reduce_storage).Reduce(hi, [](uint32_t a, uint32_t b) { return max(a, b); });
    if (tid == 0) {
      key_min = lo;
      key_max = hi;
    }
    __syncthreads();
    const uint32_t base = key_min, range = key_max - key_min;
    uint32_t prefix = 0, prefix_mask = 0;
    int remaining = k, equal_count = candidates;
    for (int top = range ? 31 - __clz(range) : -1; top >= 0;) {
      const int low = max(top - 7, 0), width_mask = (1 << (top - low + 1)) - 1;
      hist[tid] = 0;  // kSelectThreads == 256 bins
      __syncthreads();
      for (int i = tid; i < candidates; i += kSelectThreads) {
        const uint32_t offset = keys[i] - base;
        if ((offset & prefix_mask) == prefix) atomicAdd(&hist[(offset >> low) & width_mask], 1);
      }
      __syncthreads();
      // Thread i holds digit 255 - i: its inclusive sum counts keys with digit >= 255 - i.
      const int count = hist[255 - tid];
      int at_or_above;
      Scan(scan_storage).InclusiveSum(count, at_or_above);
      if (at_or_above >= remaining && at_or_above - count < remaining) {
        found_prefix = prefix | (static_cast<uint32_t>(255 - tid) << low);
        found_remaining = remaining - (at_or_above - count);
        found_count = count;
      }
      __syncthreads();
      prefix = found_prefix;
      remaining = found_remaining;
      equal_count = found_count;  // after the last pass: keys equal to the threshold
      prefix_mask |= static_cast<uint32_t>(width_mask) << low;
      top = low - 1;
    }
    threshold = base + prefix;
    ties_to_take = remaining;
    ordered_ties = ties_to_take < equal_count;
  }

  uint8_t* flags = p.union_flags + static_cast<size_t>(head_slot) * p.flag_stride;
  uint32_t* bits = p.row_bits ? p.row_bits + row_index * p.words : nullptr;
  int ties_taken = 0;
  for (int base = 0; base < n; base += kSelectThreads) {
    const int i = base + tid;
    const bool candidate = i < candidates;
    const uint32_t key = candidate && !take_all ? keys[i] : 0u;
    bool chosen;
    if (take_all) {
      chosen = candidate;
    } else if (!ordered_ties) {
      chosen = candidate && key >= threshold;
    } else {  // some ties at T are left out: rank them in page order
      const bool tie = candidate && key == threshold;
      int tie_rank, ties_here;
      Scan(scan_storage).ExclusiveSum(tie ? 1 : 0, tie_rank, ties_here);
      chosen = candidate && (key > threshold || (tie && ties_taken + tie_rank < ties_to_take));
      ties_taken += ties_here;
      __syncthreads();  // scan_storage is reused
    }
    if (p.keep_last && i == n - 1) chosen = true;
    if (chosen) flags[i] = 1;
    const uint32_t word = __ballot_sync(0xffffffffu, chosen);
    const int word_start = base + (tid / 32) * 32;
    if (bits && tid % 32 == 0 && word_start < n) bits[word_start / 32] = word;
  }
}

// One CTA per (sequence, KV head); each thread takes four flags at a time (one 32-bit load).
__global__ void __launch_bounds__(kUnionThreads) union_kernel(const __grid_constant__ UnionParams p) {
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  allow_successor();
  using Scan = cub::BlockScan<int, kUnionThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const int head_slot = blockIdx.x, seq = head_slot / p.kv.num_kv_heads;
  if (p.seq_mask && !p.seq_mask[seq]) return;
  const SeqPages sp = seq_pages(p.kv, seq);
  uint8_t* flags = p.flags + static_cast<size_t>(head_slot) * p.flag_stride;
  int32_t* pages = p.pages + static_cast<size_t>(head_slot) * p.list_stride;
  int32_t* phys = p.phys + static_cast<size_t>(head_slot) * p.list_stride;
  int written = 0;
  for (int base = 0; base < sp.num_pages; base += 4 * kUnionThreads) {
    const int i = base + 4 * threadIdx.x;
    uint32_t four = 0;
    if (i < sp.num_pages) four = *reinterpret_cast<const uint32_t*>(flags + i);  // stride % 4 == 0
    const int count = __popc(four & 0x01010101u);
    int pos, total;
    Scan(scan_storage).ExclusiveSum(count, pos, total);
    if (four) {
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if ((four >> (8 * j)) & 1u) {
          phys[written + pos] = sp.table[i + j];
          pages[written + pos++] = i + j;
        }
      *reinterpret_cast<uint32_t*>(flags + i) = 0u;  // clean for the next step
    }
    written += total;
    __syncthreads();
  }
  if (threadIdx.x == 0) p.counts[head_slot] = written;
}

}  // namespace

void launch_topk(const TopKParams& p, int num_kv_heads, int num_seqs, int max_pages, cudaStream_t stream) {
  if (max_pages == 0 || p.rows_per_kv_head == 0) return;
  const size_t smem = static_cast<size_t>(max_pages) * sizeof(uint32_t);
  if (smem > 48 * 1024) {
    static size_t granted = 48 * 1024;  // raise the opt-in only when a larger prefix needs it
    if (smem > granted) {
      LOSA_CUDA_CHECK(cudaFuncSetAttribute(topk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
      granted = smem;
    }
  }
  launch_kernel(topk_kernel, dim3(p.rows_per_kv_head, num_kv_heads, num_seqs), kSelectThreads, smem, stream, p);
  check_launch("topk_kernel");
}

void launch_union(const UnionParams& p, int num_seqs, cudaStream_t stream) {
  launch_kernel(union_kernel, num_seqs * p.kv.num_kv_heads, kUnionThreads, 0, stream, p);
  check_launch("union_kernel");
}

}  // namespace losa::cuda
