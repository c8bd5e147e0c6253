// Per-row top-k page selection (radix select), and the union of the selections per (sequence,
// KV head) compacted into page lists: QUEST's rows, and SparseD's switch step, where the rows
// are the query heads of a group. One launch does both: each row's CTA marks its pages in the
// (sequence, KV head)'s flags, and the CTA that finishes last (a ticket) compacts them.
//
// A CTA selects for one row. Its scores are staged in shared memory as order-preserving keys.
// Small k (at most 64: LoSA's and QUEST's budgets up to 1,024 tokens) first tries a filter with
// three barriers: the k-th largest of the warps' top ceil(k/4) thread maxima is a floor that at
// least k keys reach. The keys at or above it (a few dozen on a row with a peak) are ranked
// exactly by (key descending, page ascending) and the first k taken, the row's bitmap built in
// shared memory. More than 256 of them (ties, flat rows) fall through to the radix select.
// The radix select: one 11-bit histogram pass over key - min finds the bin that holds the k-th largest key; when
// that bin holds at most a key per thread (the usual case: a few thousand keys over 2048 bins),
// its keys are ranked exactly by (key descending, page ascending) and the k-th of that order
// bounds the selection. Otherwise 8-bit radix passes go on below the bin to the k-th largest key
// T: every key > T is taken; of the keys equal to T the lowest pages fill the rest (the CPU
// reference's tie rule), by a plain compare when all of them are taken, else an ordered scan.
// Each warp's 32 consecutive pages form one bitmap word (a ballot), so the radix path writes the
// row's bitmap whole with no atomics.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <algorithm>

#include "common.cuh"
#include "kv_view.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "losa/cuda/device.hpp"

namespace losa::cuda {
namespace {

constexpr int kSelectThreads = 256;
constexpr int kWideBits = 11, kWideBins = 1 << kWideBits;  // the first pass's digit
constexpr int kBinsPerThread = kWideBins / kSelectThreads;
constexpr int kSelectWarps = kSelectThreads / 32;
constexpr int kFilterMaxK = kSelectWarps * 8;  // up to 8 rounds of warp maxima
constexpr int kFilterMaxCandidates = kSelectThreads;  // one to rank per thread
// The filter's candidates (keys, pages) and the row's bitmap share the histogram's space.
constexpr int kFilterMaxWords = kWideBins - 2 * kFilterMaxCandidates;

// Larger float -> larger unsigned key.
__device__ __forceinline__ uint32_t ordered_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/// The union's page list of one (sequence, KV head) from its flags, ascending; the flags are
/// cleared for the next launch. A thread takes 16 flags per round (one 16-byte load from the L2:
/// other CTAs wrote them), and looks up all its chosen pages' physical pages before storing any,
/// so that a round costs two global round trips whatever the number of pages chosen.
__device__ void compact_union(const TopKParams& p, int head_slot, const SeqPages& sp) {
  constexpr int kPerThread = 16;
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  uint8_t* flags = p.union_flags + static_cast<size_t>(head_slot) * p.flag_stride;
  int32_t* pages = p.pages + static_cast<size_t>(head_slot) * p.list_stride;
  int32_t* phys = p.phys + static_cast<size_t>(head_slot) * p.list_stride;
  int written = 0;
  for (int base = 0; base < sp.num_pages; base += kPerThread * kSelectThreads) {
    const int first = base + kPerThread * threadIdx.x;
    uint4 four_words = make_uint4(0u, 0u, 0u, 0u);  // flag_stride % 16 == 0: never past the row
    if (first < sp.num_pages) four_words = __ldcg(reinterpret_cast<const uint4*>(flags + first));
    const uint32_t word[4] = {four_words.x, four_words.y, four_words.z, four_words.w};
    uint32_t chosen = 0;  // bit j: page first + j
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) chosen |= ((word[j / 4] >> (8 * (j % 4))) & 1u) << j;
    int pos, total;
    Scan(scan_storage).ExclusiveSum(__popc(chosen), pos, total);
    int physical[kPerThread];
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) physical[j] = (chosen >> j) & 1u ? sp.table[first + j] : 0;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j)
      if ((chosen >> j) & 1u) {
        phys[written + pos] = physical[j];
        pages[written + pos++] = first + j;
      }
    if (chosen) *reinterpret_cast<uint4*>(flags + first) = make_uint4(0u, 0u, 0u, 0u);
    written += total;
    __syncthreads();  // scan_storage is reused
  }
  if (threadIdx.x == 0) p.counts[head_slot] = written;
}

/// The small-k filter (the header's first path) for one row, by the whole CTA. `space` is the
/// histogram's shared memory. Returns false, the same in every thread and having written nothing
/// global, when more than kFilterMaxCandidates keys reach the filter's floor; true when the row's
/// flags and bits are written.
__device__ bool filter_select(const uint32_t* keys, int candidates, int k, int n, uint32_t thread_max, bool keep_last,
                              uint8_t* flags, uint32_t* bits, int* space) {
  constexpr int kTop = 32;
  __shared__ uint32_t warp_top[kSelectWarps * kTop];
  __shared__ uint32_t floor_key;
  __shared__ int found;
  uint32_t* found_keys = reinterpret_cast<uint32_t*>(space);
  int* found_pages = space + kFilterMaxCandidates;
  uint32_t* row_bitmap = reinterpret_cast<uint32_t*>(space + 2 * kFilterMaxCandidates);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, words = (n + 31) / 32;
  // The floor is the k-th largest of the warps' top-m thread maxima (m = ceil(k / 4), listed by m
  // rounds of a warp max): k threads hold a key at least that large. It is the k-th largest thread
  // maximum when the top ones are spread over the warps, a little lower when they cluster (ncu:
  // with m = k the merge below was a third of the kernel's instructions). A lane without keys
  // holds 0 (at worst a floor every key reaches; then the count decides). Correctness never rests
  // on the floor: the ranking below is exact whenever at least k keys reach it.
  const int m = min((k + 3) / 4, kTop);
  uint32_t value = thread_max;
  for (int round = 0; round < m; ++round) {
    const uint32_t top = __reduce_max_sync(0xffffffffu, value);
    const unsigned holders = __ballot_sync(0xffffffffu, value == top);
    if (lane == __ffs(holders) - 1) value = 0u;
    if (lane == 0) warp_top[warp * m + round] = top;
  }
  if (tid == 0) {
    found = 0;
    floor_key = 0u;
  }
  for (int w = tid; w < words; w += kSelectThreads) row_bitmap[w] = 0u;
  __syncthreads();
  if (tid < kSelectWarps * m) {  // the one entry ranked k-1st (value descending, index ascending)
    const uint32_t mine = warp_top[tid];
    int rank = 0;
#pragma unroll 8
    for (int j = 0; j < kSelectWarps * m; ++j) {
      const uint32_t other = warp_top[j];
      rank += other > mine || (other == mine && j < tid);
    }
    if (rank == k - 1) floor_key = mine;
  }
  __syncthreads();
  const uint32_t floor_here = floor_key;
  // The thread's own keys (as it staged them: no barrier needed) at or above the floor.
  for (int q = tid; q < (candidates + 3) / 4; q += kSelectThreads) {
    const uint4 four = reinterpret_cast<const uint4*>(keys)[q];
    const uint32_t key[4] = {four.x, four.y, four.z, four.w};
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (4 * q + j < candidates && key[j] >= floor_here) {
        const int at = atomicAdd(&found, 1);
        if (at < kFilterMaxCandidates) {
          found_keys[at] = key[j];
          found_pages[at] = 4 * q + j;
        }
      }
  }
  __syncthreads();
  const int count = found;
  if (count < k || count > kFilterMaxCandidates) return false;
  if (tid < count) {
    const uint32_t key = found_keys[tid];
    const int page = found_pages[tid];
    int rank = 0;  // in the CPU reference's order: key descending, then page ascending
#pragma unroll 8  // eight pairs of shared loads in flight (ncu: the others waited on this loop)
    for (int j = 0; j < count; ++j) {
      const uint32_t other = found_keys[j];
      rank += other > key || (other == key && found_pages[j] < page);
    }
    if (rank < k) {
      flags[page] = 1;
      atomicOr(&row_bitmap[page / 32], 1u << (page % 32));
    }
  }
  if (keep_last && tid == 0) {  // QUEST's last page: always kept, never a candidate
    flags[n - 1] = 1;
    atomicOr(&row_bitmap[(n - 1) / 32], 1u << ((n - 1) % 32));
  }
  __syncthreads();
  if (bits)
    for (int w = tid; w < words; w += kSelectThreads) bits[w] = row_bitmap[w];
  return true;
}

__global__ void __launch_bounds__(kSelectThreads) topk_kernel(const __grid_constant__ TopKParams p) {
  wait_for_predecessor();  // PDL: the previous kernel's writes are visible from here on
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  // The first pass's histogram; the boundary bin's keys and pages, and the later 256-bin
  // passes, reuse its space.
  __shared__ __align__(16) int hist[kWideBins];
  uint32_t* bin_keys = reinterpret_cast<uint32_t*>(hist);
  int* bin_pages = hist + kSelectThreads;
  __shared__ uint32_t found_prefix, bound_key;
  __shared__ int found_remaining, found_count, bin_size, bound_page;
  extern __shared__ __align__(16) uint32_t keys[];  // [candidates rounded up to 4]

  // Grid (Hk, S, rows): head_slot = seq * Hk + kv_head indexes the per-(sequence, KV head) arrays.
  // The row is the slowest dimension: the valid rows (the low ones) are then consecutive CTAs,
  // which the block scheduler spreads over all SMs. With the row fastest, LoSA's 16 valid rows of
  // every 64 landed on the same few SMs (ncu: 2.4 working CTAs per busy SM, most SMs idle).
  const int row = blockIdx.z, seq = blockIdx.y, tid = threadIdx.x;
  const int head_slot = seq * gridDim.x + blockIdx.x;
  const int valid_rows = p.rows_mask && !p.rows_mask[seq] ? 0
                         : p.active_count                  ? p.active_count[seq] * p.group
                                                           : p.rows_per_kv_head;
  if (p.seq_mask && !p.seq_mask[seq]) return;
  if (valid_rows == 0 && row == 0 && tid == 0) p.counts[head_slot] = 0;  // no row: an empty union
  if (row >= valid_rows) return;
  const size_t row_index = static_cast<size_t>(head_slot) * p.rows_per_kv_head + row;
  const float* scores = p.scores + row_index * p.score_stride;
  const int n = (p.kv.kv_len[seq] + p.kv.page_size - 1) / p.kv.page_size;
  const int candidates = p.keep_last ? max(n - 1, 0) : n;
  const int k = p.select_fraction > 0.0 ? min(n, max(1, static_cast<int>(ceil(p.select_fraction * n - 1e-9)))) : p.k;
  const bool take_all = k >= candidates;

  uint32_t threshold = 0;
  int ties_to_take = 0;
  bool ordered_ties = false;
  bool ranked = false;  // the boundary bin was ranked: take (key, page) >= (bound_key, bound_page)
  bool filtered = false;  // the filter chose the row's pages and wrote its flags and bits
  uint8_t* flags = p.union_flags + static_cast<size_t>(head_slot) * p.flag_stride;
  uint32_t* bits = p.row_bits ? p.row_bits + row_index * p.words : nullptr;
  uint32_t lo = 0xffffffffu, hi = 0u;  // this thread's least and greatest keys
  if (!take_all) {
    // Four scores per 16-byte load, four loads in flight per thread (score_stride % 4 == 0;
    // the row's padding past the candidates is read and ignored).
#pragma unroll 4
    for (int q = tid; q < (candidates + 3) / 4; q += kSelectThreads) {
      const float4 four = reinterpret_cast<const float4*>(scores)[q];
      const uint32_t key[4] = {ordered_key(four.x), ordered_key(four.y), ordered_key(four.z), ordered_key(four.w)};
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (4 * q + j < candidates) {
          lo = min(lo, key[j]);
          hi = max(hi, key[j]);
        }
      reinterpret_cast<uint4*>(keys)[q] = make_uint4(key[0], key[1], key[2], key[3]);
    }
    const int row_words = (n + 31) / 32;
    if (k <= kFilterMaxK && row_words <= kFilterMaxWords)
      filtered = filter_select(keys, candidates, k, n, hi, p.keep_last, flags, bits, hist);
  }
  if (!take_all && !filtered) {
    // Radix select on key - min_key, from the highest bit of the range down (11 bits, then 8 a
    // pass): a row's scores share their top bits, so digits of the raw key would pile into one or two
    // histogram bins (serialised atomics); offset by the minimum they spread out.
    using Reduce = cub::BlockReduce<uint32_t, kSelectThreads>;
    __shared__ typename Reduce::TempStorage reduce_storage;
    __shared__ uint32_t key_min, key_max;
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
    int top = range ? 31 - __clz(range) : -1;
    if (top >= 0) {
      const int low = max(top - (kWideBits - 1), 0);
      for (int b = tid; b < kWideBins; b += kSelectThreads) hist[b] = 0;
      if (tid == 0) bin_size = 0;
      __syncthreads();
      for (int i = tid; i < candidates; i += kSelectThreads) atomicAdd(&hist[(keys[i] - base) >> low], 1);
      __syncthreads();
      // Thread t holds bins 2047 - 8t down to 2040 - 8t: its exclusive sum counts the keys above.
      int held[kBinsPerThread], local = 0;
#pragma unroll
      for (int j = 0; j < kBinsPerThread; ++j) local += held[j] = hist[kWideBins - 1 - kBinsPerThread * tid - j];
      int above;
      Scan(scan_storage).ExclusiveSum(local, above);
      if (above < remaining && above + local >= remaining) {
#pragma unroll
        for (int j = 0; j < kBinsPerThread; ++j) {
          if (above < remaining && above + held[j] >= remaining) {
            found_prefix = static_cast<uint32_t>(kWideBins - 1 - kBinsPerThread * tid - j) << low;
            found_remaining = remaining - above;
            found_count = held[j];
          }
          above += held[j];
        }
      }
      __syncthreads();
      prefix = found_prefix;
      prefix_mask = static_cast<uint32_t>((1ull << (top - low + 1)) - 1) << low;
      remaining = found_remaining;
      equal_count = found_count;
      top = low - 1;
      if (equal_count <= kSelectThreads) {
        ranked = true;
        for (int i = tid; i < candidates; i += kSelectThreads) {
          const uint32_t key = keys[i];
          if (((key - base) & prefix_mask) == prefix) {
            const int at = atomicAdd(&bin_size, 1);
            bin_keys[at] = key;
            bin_pages[at] = i;
          }
        }
        __syncthreads();
        if (tid < bin_size) {
          const uint32_t key = bin_keys[tid];
          const int page = bin_pages[tid];
          int rank = 0;
          for (int j = 0; j < bin_size; ++j) {
            const uint32_t other = bin_keys[j];
            rank += other > key || (other == key && bin_pages[j] < page);
          }
          if (rank == remaining - 1) {
            bound_key = key;
            bound_page = page;
          }
        }
        __syncthreads();
        top = -1;
      }
    }
    for (; top >= 0;) {
      const int low = max(top - 7, 0), width_mask = (1 << (top - low + 1)) - 1;
      hist[tid] = 0;  // kSelectThreads == 256 bins of the wide histogram's space
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

  int ties_taken = 0;
  for (int base = 0; base < n && !filtered; base += kSelectThreads) {
    const int i = base + tid;
    const bool candidate = i < candidates;
    const uint32_t key = candidate && !take_all ? keys[i] : 0u;
    bool chosen;
    if (take_all) {
      chosen = candidate;
    } else if (ranked) {
      chosen = candidate && (key > bound_key || (key == bound_key && i <= bound_page));
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

  // The attention may become resident from here on (under PDL): earlier, its CTAs' shared
  // memory and registers would keep this grid's waiting rows off the SMs.
  allow_successor();

  // The last row of the (sequence, KV head) to finish compacts the union.
  if (!last_to_arrive(p.union_ticket + head_slot, static_cast<unsigned>(valid_rows))) return;
  compact_union(p, head_slot, seq_pages(p.kv, seq));
}

size_t topk_static_smem() {
  cudaFuncAttributes attributes{};
  LOSA_CUDA_CHECK(cudaFuncGetAttributes(&attributes, topk_kernel));
  return attributes.sharedSizeBytes;
}
size_t keys_bytes(int max_pages) { return static_cast<size_t>(max_pages + 3) / 4 * 4 * sizeof(uint32_t); }
}  // namespace

int topk_max_pages() {
  const int optin = shared_memory_per_block_optin();
  const size_t own = topk_static_smem();
  return optin > static_cast<int>(own) ? static_cast<int>((optin - own) / sizeof(uint32_t)) / 4 * 4 : 0;
}

void launch_topk(const TopKParams& p, int num_kv_heads, int num_seqs, int max_pages, cudaStream_t stream) {
  if (max_pages == 0 || p.rows_per_kv_head == 0) return;
  if (p.score_stride % 4 != 0 || p.flag_stride % 16 != 0)  // the kernel's vector loads
    throw ArgumentError("launch_topk", "score_stride/flag_stride", "must be multiples of 4 and 16");
  if (p.rows_per_kv_head > 65535)  // the grid's z dimension
    throw ArgumentError("launch_topk", "rows_per_kv_head", "must be at most 65535");
  const size_t smem = keys_bytes(max_pages);
  // Static and dynamic shared memory together past 48 KB need the opt-in (the histogram's 8 KB
  // count: 9,625..12,288 pages once failed to launch with the dynamic size alone under 48 KB).
  static const size_t own = topk_static_smem();
  static size_t granted = 48 * 1024 - own;  // dynamic bytes a launch may use now
  if (smem > granted) {
    const int limit = topk_max_pages();
    if (max_pages > limit)
      throw ArgumentError("launch_topk", "max_pages", "must be at most " + std::to_string(limit) +
                                                          " on this device (a row's keys in shared memory), got " +
                                                          std::to_string(max_pages));
    LOSA_CUDA_CHECK(cudaFuncSetAttribute(topk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
    granted = smem;
  }
  launch_kernel(topk_kernel, dim3(num_kv_heads, num_seqs, p.rows_per_kv_head), kSelectThreads, smem, stream, p);
  check_launch("topk_kernel");
}

}  // namespace losa::cuda
