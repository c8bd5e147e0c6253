// The GPU layer-step: buffers sized once, then per step a fixed sequence of launches chosen by
// (mode, step) on the host, with every count on the device.
#include <algorithm>
#include <numeric>

#include "common.cuh"
#include "dispatch.cuh"
#include "launchers.hpp"
#include "losa/cuda/layer_step.hpp"

namespace losa::cuda {

namespace {
constexpr int kMaxSplits = 64;  // bounds the partial-state buffers; 64 x 8 heads fills 132 SMs
}

struct LayerStepRunner::Impl {
  BlockShape shape;
  PagedKVConfig kv;
  ModeConfig mode;
  int max_pages = 0, flag_stride = 0, group = 0, max_rows = 0, row_tiles = 0, words = 0, num_sms = 0;
  float scale = 0.0f;
  int step = 0, block_pages = -1;
  std::function<void(const char*)> hook;

  DeviceBuffer active_tokens, active_count, token_slot, delta, ticket;
  DeviceBuffer scores, union_flags, row_bits, lists, phys_lists, counts;
  DeviceBuffer sparsed_lists, sparsed_phys, sparsed_counts, sparsed_bits, mass, lse_full;
  DeviceBuffer partial_o, partial_lse, prefix_o, prefix_lse, q_ref, k_ref, v_ref;

  // What the last run did, for last_stats().
  enum class Loaded { nothing, every_page, quest_lists, sparsed_lists } loaded = Loaded::nothing;
  int last_step = -1, last_pages = 0;
  bool last_scored = false;

  void mark(const char* stage) const {
    if (hook) hook(stage);
  }
};

LayerStepRunner::LayerStepRunner(const BlockShape& shape, const PagedKVConfig& kv_config,
                                 const ModeConfig& mode, int max_prefix_pages)
    : impl_(std::make_unique<Impl>()) {
  validate(shape);
  validate(kv_config);
  validate(mode, shape.block_size, kv_config.page_size);
  LOSA_CHECK_ARG(shape.num_kv_heads == kv_config.num_kv_heads, "shape.num_kv_heads", "is ",
                 shape.num_kv_heads, " but the cache has ", kv_config.num_kv_heads);
  LOSA_CHECK_ARG(shape.head_dim == kv_config.head_dim, "shape.head_dim", "is ", shape.head_dim,
                 " but the cache has ", kv_config.head_dim);
  LOSA_CHECK_ARG(shape.block_size <= 64, "shape.block_size", "must be <= 64 on the GPU, got ",
                 shape.block_size);
  LOSA_CHECK_ARG(max_prefix_pages > 0 && max_prefix_pages <= kv_config.max_pages,
                 "max_prefix_pages", "must be in [1, max_pages=", kv_config.max_pages, "], got ",
                 max_prefix_pages);
  check_dispatch(kv_config.dtype, kv_config.head_dim);
  Impl& s = *impl_;
  s.shape = shape;
  s.kv = kv_config;
  s.mode = mode;
  s.max_pages = max_prefix_pages;
  s.flag_stride = (max_prefix_pages + 15) / 16 * 16;  // 4-byte aligned rows for the union kernel
  s.group = shape.group_size();
  s.max_rows = shape.block_size * s.group;
  s.row_tiles = ceil_div(s.max_rows, kRowsPerCta);
  s.words = ceil_div(max_prefix_pages, 32);
  s.scale = mode.softmax_scale > 0.0f ? mode.softmax_scale : shape.default_scale();
  int device = 0;
  LOSA_CUDA_CHECK(cudaGetDevice(&device));
  LOSA_CUDA_CHECK(cudaDeviceGetAttribute(&s.num_sms, cudaDevAttrMultiProcessorCount, device));

  const size_t B = shape.block_size, Hq = shape.num_q_heads, Hk = shape.num_kv_heads;
  const size_t D = shape.head_dim, elem = dtype_bytes(kv_config.dtype), pages = max_prefix_pages;
  s.active_tokens = DeviceBuffer(B * 4);
  s.active_count = DeviceBuffer(4);
  s.token_slot = DeviceBuffer(B * 4);
  s.delta = DeviceBuffer(B * sizeof(double));
  s.ticket = DeviceBuffer(4);
  s.ticket.fill_bytes(0);
  s.scores = DeviceBuffer(Hk * s.max_rows * pages * 4);
  s.union_flags = DeviceBuffer(Hk * s.flag_stride);
  s.union_flags.fill_bytes(0);  // the union kernel leaves it clean after every use
  s.row_bits = DeviceBuffer(Hk * s.max_rows * s.words * 4);
  s.lists = DeviceBuffer(Hk * pages * 4);
  s.phys_lists = DeviceBuffer(Hk * pages * 4);
  s.sparsed_phys = DeviceBuffer(Hk * pages * 4);
  s.counts = DeviceBuffer(Hk * 4);
  s.sparsed_lists = DeviceBuffer(Hk * pages * 4);
  s.sparsed_counts = DeviceBuffer(Hk * 4);
  s.sparsed_counts.fill_bytes(0);
  s.sparsed_bits = DeviceBuffer(Hk * s.group * s.words * 4);
  s.mass = DeviceBuffer(Hk * s.group * pages * 4);
  s.lse_full = DeviceBuffer(B * Hq * 4);
  s.partial_o = DeviceBuffer(Hk * kMaxSplits * s.max_rows * D * 4);
  s.partial_lse = DeviceBuffer(Hk * kMaxSplits * s.max_rows * 4);
  s.prefix_o = DeviceBuffer(B * Hq * D * 4);
  s.prefix_lse = DeviceBuffer(B * Hq * 4);
  s.q_ref = DeviceBuffer(B * Hq * D * elem);
  s.k_ref = DeviceBuffer(B * Hk * D * elem);
  s.v_ref = DeviceBuffer(B * Hk * D * elem);
}

LayerStepRunner::~LayerStepRunner() = default;
LayerStepRunner::LayerStepRunner(LayerStepRunner&&) noexcept = default;
LayerStepRunner& LayerStepRunner::operator=(LayerStepRunner&&) noexcept = default;

void LayerStepRunner::begin_block() { impl_->step = 0; }
int LayerStepRunner::step() const { return impl_->step; }
const ModeConfig& LayerStepRunner::mode() const { return impl_->mode; }
void LayerStepRunner::set_stage_hook(std::function<void(const char*)> hook) { impl_->hook = std::move(hook); }
const DeviceBuffer& LayerStepRunner::prefix_o() const { return impl_->prefix_o; }
const DeviceBuffer& LayerStepRunner::prefix_lse() const { return impl_->prefix_lse; }

void LayerStepRunner::run(const DevicePagedKV& kv, const DeviceStepIO& io, Stream stream) {
  Impl& s = *impl_;
  LOSA_CHECK_ARG(io.q && io.k_blk && io.v_blk && io.o, "io", "q, k_blk, v_blk and o must be set");
  const PagedKVConfig& c = kv.config();
  LOSA_CHECK_ARG(c.num_kv_heads == s.kv.num_kv_heads && c.head_dim == s.kv.head_dim &&
                     c.page_size == s.kv.page_size && c.dtype == s.kv.dtype,
                 "kv", "has a different config than the runner was made for");
  const int n = kv.num_pages();
  LOSA_CHECK_ARG(n <= s.max_pages, "kv", "has ", n, " pages, more than max_prefix_pages=", s.max_pages);
  if (s.step == 0) s.block_pages = n;
  LOSA_CHECK_ARG(n == s.block_pages, "kv", "prefix changed within a block (", s.block_pages,
                 " -> ", n, " pages); call begin_block() after appending");
  const DType dtype = s.kv.dtype;
  const int D = s.shape.head_dim, Hk = s.shape.num_kv_heads, G = s.group;
  const Mode mode = s.mode.mode;
  const bool own = s.mode.attend == Attend::own;

  PagedKVView view;
  view.keys = kv.keys();
  view.values = kv.values();
  view.key_min = kv.key_min();
  view.key_max = kv.key_max();
  view.page_table = kv.page_table();
  view.num_pages = n;
  view.last_page_len = n > 0 ? kv.last_page_len() : 0;
  view.num_kv_heads = Hk;
  view.page_size = s.kv.page_size;
  ActiveSetView active{s.active_tokens.as<int32_t>(), s.active_count.as<int32_t>(), s.token_slot.as<int32_t>()};

  // 1. Which tokens get a fresh prefix part.
  s.mark("active_set");
  ActiveSetParams ap;
  ap.q = io.q;
  ap.q_ref = s.q_ref.data();
  if (s.mode.change_includes_kv) {
    ap.k = io.k_blk;
    ap.k_ref = s.k_ref.data();
    ap.v = io.v_blk;
    ap.v_ref = s.v_ref.data();
  }
  ap.block_size = s.shape.block_size;
  ap.num_q_heads = s.shape.num_q_heads;
  ap.num_kv_heads = Hk;
  ap.rule = (mode == Mode::losa && s.step > 0) ? (s.mode.active_rule == ActiveRule::top_k ? 1 : 2) : 0;
  ap.k_active = s.mode.k_active;
  ap.tau = s.mode.tau;
  ap.delta = s.delta.as<double>();
  ap.ticket = s.ticket.as<unsigned>();
  ap.tokens = s.active_tokens.as<int32_t>();
  ap.count = s.active_count.as<int32_t>();
  ap.token_slot = s.token_slot.as<int32_t>();
  launch_active_set(dtype, D, ap, stream);

  // 2. Which pages, then the prefix part over them.
  const bool use_quest =
      mode == Mode::quest || (mode == Mode::losa && (s.step > 0 || s.mode.losa_step0_quest));
  const bool sparsed_sparse = mode == Mode::sparsed && s.step >= sparsed_full_steps(s.mode);
  const int tile_pages = 64 / s.kv.page_size;
  const int num_splits = std::min(
      kMaxSplits, choose_num_splits(Hk * s.row_tiles, ceil_div(std::max(n, 1), tile_pages), s.num_sms));
  PageListView list;
  RowMaskView mask;
  s.loaded = n == 0 ? Impl::Loaded::nothing : Impl::Loaded::every_page;
  if (n > 0 && use_quest) {
    s.mark("page_scores");
    QuestScoreParams qp;
    qp.kv = view;
    qp.active = active;
    qp.q = io.q;
    qp.num_q_heads = s.shape.num_q_heads;
    qp.group = G;
    qp.max_rows = s.max_rows;
    qp.scores = s.scores.as<float>();
    qp.score_stride = s.max_pages;
    launch_quest_scores(dtype, D, qp, s.row_tiles, stream);
    s.mark("topk");
    TopKParams tp;
    tp.scores = s.scores.as<float>();
    tp.score_stride = s.max_pages;
    tp.rows_per_kv_head = s.max_rows;
    tp.active_count = s.active_count.as<int32_t>();
    tp.group = G;
    tp.num_pages = n;
    tp.keep_last = true;
    tp.k = s.mode.budget_tokens / s.kv.page_size;
    tp.union_flags = s.union_flags.as<uint8_t>();
    tp.flag_stride = s.flag_stride;
    tp.row_bits = own ? s.row_bits.as<uint32_t>() : nullptr;
    tp.words = s.words;
    launch_topk(tp, Hk, stream);
    s.mark("union");
    UnionParams up{s.union_flags.as<uint8_t>(), s.flag_stride, n, s.lists.as<int32_t>(), s.max_pages,
                   s.counts.as<int32_t>(), kv.page_table(), s.phys_lists.as<int32_t>()};
    launch_union(up, Hk, stream);
    list = PageListView{s.lists.as<int32_t>(), s.phys_lists.as<int32_t>(), s.counts.as<int32_t>(), s.max_pages};
    if (own) mask = RowMaskView{s.row_bits.as<uint32_t>(), s.words, s.max_rows, false};
    s.loaded = Impl::Loaded::quest_lists;
  } else if (n > 0 && sparsed_sparse) {
    list = PageListView{s.sparsed_lists.as<int32_t>(), s.sparsed_phys.as<int32_t>(),
                        s.sparsed_counts.as<int32_t>(), s.max_pages};
    if (own) mask = RowMaskView{s.sparsed_bits.as<uint32_t>(), s.words, G, true};
    s.loaded = Impl::Loaded::sparsed_lists;
  }
  if (n > 0) {
    s.mark("attention");
    PagedAttentionParams pa;
    pa.kv = view;
    pa.active = active;
    pa.list = list;
    pa.mask = mask;
    pa.q = io.q;
    pa.num_q_heads = s.shape.num_q_heads;
    pa.group = G;
    pa.max_rows = s.max_rows;
    pa.scale_log2 = s.scale * kLog2e;
    pa.num_splits = num_splits;
    pa.partial_o = s.partial_o.as<float>();
    pa.partial_lse = s.partial_lse.as<float>();
    launch_paged_attention(dtype, D, pa, s.row_tiles, stream);
  }

  // 3. Split merge, cache update, block part, final merge.
  s.mark("finalize");
  const bool switch_step = mode == Mode::sparsed && s.step == sparsed_full_steps(s.mode) - 1;
  FinalizeParams fp;
  fp.q = io.q;
  fp.k_blk = io.k_blk;
  fp.v_blk = io.v_blk;
  fp.active = active;
  fp.partial_o = s.partial_o.as<float>();
  fp.partial_lse = s.partial_lse.as<float>();
  fp.num_splits = num_splits;
  fp.max_rows = s.max_rows;
  fp.has_prefix = n > 0;
  fp.prefix_o = s.prefix_o.as<float>();
  fp.prefix_lse = s.prefix_lse.as<float>();
  fp.q_ref = s.q_ref.data();
  if (s.mode.change_includes_kv) {
    fp.k_ref = s.k_ref.data();
    fp.v_ref = s.v_ref.data();
  }
  fp.o = io.o;
  fp.lse = switch_step ? s.lse_full.as<float>() : nullptr;
  fp.block_size = s.shape.block_size;
  fp.num_q_heads = s.shape.num_q_heads;
  fp.num_kv_heads = Hk;
  fp.scale = s.scale;
  launch_finalize(dtype, D, fp, stream);

  // 4. SparseD's switch: head-specific pages by attention mass, kept for the block's rest.
  if (switch_step && n > 0) {
    s.mark("sparsed_select");
    LOSA_CUDA_CHECK(cudaMemsetAsync(s.mass.data(), 0, s.mass.bytes(), stream));
    SparsedMassParams mp;
    mp.kv = view;
    mp.q = io.q;
    mp.lse_full = s.lse_full.as<float>();
    mp.block_size = s.shape.block_size;
    mp.num_q_heads = s.shape.num_q_heads;
    mp.group = G;
    mp.scale_log2 = s.scale * kLog2e;
    mp.mass = s.mass.as<float>();
    mp.mass_stride = s.max_pages;
    launch_sparsed_mass(dtype, D, mp, s.row_tiles, stream);
    TopKParams tp;
    tp.scores = s.mass.as<float>();
    tp.score_stride = s.max_pages;
    tp.rows_per_kv_head = G;
    tp.group = G;
    tp.num_pages = n;
    tp.keep_last = false;
    tp.k = sparsed_pages_kept(n, s.mode.sparsed_select);
    tp.union_flags = s.union_flags.as<uint8_t>();
    tp.flag_stride = s.flag_stride;
    tp.row_bits = s.sparsed_bits.as<uint32_t>();
    tp.words = s.words;
    launch_topk(tp, Hk, stream);
    UnionParams up{s.union_flags.as<uint8_t>(), s.flag_stride, n, s.sparsed_lists.as<int32_t>(),
                   s.max_pages, s.sparsed_counts.as<int32_t>(), kv.page_table(),
                   s.sparsed_phys.as<int32_t>()};
    launch_union(up, Hk, stream);
  }
  s.mark("done");
  s.last_step = s.step;
  s.last_pages = n;
  s.last_scored = n > 0 && use_quest;
  ++s.step;
}

StepStats LayerStepRunner::last_stats(Stream stream) const {
  const Impl& s = *impl_;
  synchronize(stream);
  const int Hk = s.shape.num_kv_heads;
  StepStats st;
  st.mode = s.mode.mode;
  st.step = s.last_step;
  st.num_pages = s.last_pages;
  int32_t active = 0;
  s.active_count.download(&active, 4);
  st.active_tokens = active;
  st.full_step = active == s.shape.block_size;
  std::vector<int32_t> counts(Hk, 0);
  if (s.loaded == Impl::Loaded::every_page) std::fill(counts.begin(), counts.end(), s.last_pages);
  if (s.loaded == Impl::Loaded::quest_lists) s.counts.download(counts.data(), Hk * 4);
  if (s.loaded == Impl::Loaded::sparsed_lists) s.sparsed_counts.download(counts.data(), Hk * 4);
  st.pages_loaded.assign(counts.begin(), counts.end());
  const int64_t elem = dtype_bytes(s.kv.dtype);
  const int64_t page_bytes = 2 * elem * s.kv.page_size * s.shape.head_dim;
  st.kv_bytes = std::accumulate(counts.begin(), counts.end(), int64_t{0}) * page_bytes;
  st.bounds_bytes = s.last_scored && active > 0 ? int64_t{2} * elem * s.shape.head_dim * Hk * s.last_pages : 0;
  return st;
}

StepDecisions LayerStepRunner::last_decisions(Stream stream) const {
  const Impl& s = *impl_;
  synchronize(stream);
  StepDecisions decisions;
  int32_t active = 0;
  s.active_count.download(&active, 4);
  std::vector<int32_t> tokens(s.shape.block_size);
  s.active_tokens.download(tokens.data(), tokens.size() * 4);
  decisions.tokens.assign(tokens.begin(), tokens.begin() + active);
  decisions.selection = selection_from_device(s);
  return decisions;
}

PageSelection LayerStepRunner::selection_from_device(const Impl& s) {
  const int Hk = s.shape.num_kv_heads, Hq = s.shape.num_q_heads, G = s.group, n = s.last_pages;
  if (s.loaded == Impl::Loaded::every_page || s.loaded == Impl::Loaded::nothing) {
    PageSelection all = select_all_pages(n, Hk);
    if (s.loaded == Impl::Loaded::nothing) all.kv_head_pages.assign(Hk, {});
    return all;
  }
  const bool quest = s.loaded == Impl::Loaded::quest_lists;
  PageSelection sel;
  sel.num_pages = n;
  std::vector<int32_t> counts(Hk), lists(static_cast<size_t>(Hk) * s.max_pages);
  (quest ? s.counts : s.sparsed_counts).download(counts.data(), Hk * 4);
  (quest ? s.lists : s.sparsed_lists).download(lists.data(), lists.size() * 4);
  for (int h = 0; h < Hk; ++h)
    sel.kv_head_pages.emplace_back(lists.begin() + static_cast<size_t>(h) * s.max_pages,
                                   lists.begin() + static_cast<size_t>(h) * s.max_pages + counts[h]);
  if (s.mode.attend != Attend::own) return sel;
  const int mask_rows = quest ? s.max_rows : G;
  std::vector<uint32_t> bits(static_cast<size_t>(Hk) * mask_rows * s.words);
  (quest ? s.row_bits : s.sparsed_bits).download(bits.data(), bits.size() * 4);
  auto pages_of = [&](int kvh, int mask_row) {
    std::vector<int> pages;
    const uint32_t* b = &bits[(static_cast<size_t>(kvh) * mask_rows + mask_row) * s.words];
    for (int p = 0; p < n; ++p)
      if (b[p >> 5] >> (p & 31) & 1u) pages.push_back(p);
    return pages;
  };
  sel.row_pages.assign(s.shape.num_rows(), {});
  if (quest) {
    int32_t active = 0;
    s.active_count.download(&active, 4);
    std::vector<int32_t> tokens(s.shape.block_size);
    s.active_tokens.download(tokens.data(), tokens.size() * 4);
    for (int a = 0; a < active; ++a)
      for (int h = 0; h < Hq; ++h)
        sel.row_pages[tokens[a] * Hq + h] = pages_of(h / G, a * G + h % G);
  } else {
    for (int t = 0; t < s.shape.block_size; ++t)
      for (int h = 0; h < Hq; ++h) sel.row_pages[t * Hq + h] = pages_of(h / G, h % G);
  }
  return sel;
}

}  // namespace losa::cuda
