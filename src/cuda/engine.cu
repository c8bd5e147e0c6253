// The batched attention engine: plan() sizes everything on the host once per batch shape; run()
// validates its arguments up front (nothing is queued when an argument is bad) and enqueues a
// fixed sequence of launches chosen by (mode, step), with every length and count on the device.
#include <algorithm>
#include <numeric>

#include "batch_view.hpp"
#include "common.cuh"
#include "dispatch.cuh"
#include "launch.cuh"
#include "launchers.hpp"
#include "losa/cuda/device.hpp"
#include "losa/cuda/engine.hpp"
#include "workspace_layout.hpp"

namespace losa::cuda {

namespace {
constexpr int kMaxBlock = 64;
}  // namespace

struct AttentionEngine::Impl {
  BlockShape shape;
  PagedKVConfig kv;
  ModeConfig mode;
  EngineOptions options;
  int group = 0, max_rows = 0, row_tiles = 0, tile_pages = 0;
  float scale = 0.0f;
  EnginePlan plan;
  bool planned = false;
  WorkspaceLayout ws;
  LayerStateLayout st;
  char* workspace = nullptr;
  std::function<void(const char*)> hook;

  // What the last run did, for last_stats() and last_decisions().
  enum class Loaded { nothing, every_page, quest_lists, sparsed_lists } loaded = Loaded::nothing;
  int last_step = -1;
  bool last_full = false;  // every token was active (no active set in the workspace)
  const uint8_t* last_seq_mask = nullptr;  // the full step's sequences sitting out had none
  bool last_scored = false;
  KVBatchView last_view;

  void mark(const char* stage) const {
    if (hook) hook(stage);
  }
  template <typename T>
  T* at(size_t offset) const {
    return reinterpret_cast<T*>(workspace + offset);
  }
  int budget_pages() const { return mode.budget_tokens / kv.page_size; }
  bool uses_quest() const { return mode.mode == Mode::quest || mode.mode == Mode::losa; }
};

AttentionEngine::AttentionEngine(const BlockShape& shape, const PagedKVConfig& kv_config, const ModeConfig& mode,
                                 const EngineOptions& options)
    : impl_(std::make_unique<Impl>()) {
  validate(shape);
  validate(kv_config);
  validate(mode, shape.block_size, kv_config.page_size);
  LOSA_CHECK_ARG(shape.num_kv_heads == kv_config.num_kv_heads, "shape.num_kv_heads", "is ", shape.num_kv_heads,
                 " but the cache has ", kv_config.num_kv_heads);
  LOSA_CHECK_ARG(shape.head_dim == kv_config.head_dim, "shape.head_dim", "is ", shape.head_dim,
                 " but the cache has ", kv_config.head_dim);
  LOSA_CHECK_ARG(shape.block_size <= kMaxBlock, "shape.block_size", "must be <= 64 on the GPU, got ",
                 shape.block_size);
  LOSA_CHECK_ARG(!mode.bounds8 || kv_config.keep_bounds8, "mode.bounds8",
                 "needs a cache that keeps 8-bit bounds (PagedKVConfig::keep_bounds8)");
  if (mode.mode == Mode::sparsed)
    LOSA_CHECK_ARG(shape.group_size() <= sparsed_max_group(), "shape.num_q_heads", "SparseD on the GPU supports at most ",
                   sparsed_max_group(), " query heads per KV head, got ", shape.group_size());
  LOSA_CHECK_ARG(options.force_num_splits >= 0 && options.force_num_splits <= kMaxAttentionSplits,
                 "options.force_num_splits", "must be in [0, ", kMaxAttentionSplits, "], got ", options.force_num_splits);
  check_dispatch(kv_config.dtype, kv_config.head_dim);
  Impl& s = *impl_;
  s.shape = shape;
  s.kv = kv_config;
  s.mode = mode;
  s.options = options;
  s.group = shape.group_size();
  s.max_rows = shape.block_size * s.group;
  s.row_tiles = ceil_div(s.max_rows, kRowsPerCta);
  s.tile_pages = 64 / kv_config.page_size;
  s.scale = mode.softmax_scale > 0.0f ? mode.softmax_scale : shape.default_scale();
}

AttentionEngine::~AttentionEngine() = default;
AttentionEngine::AttentionEngine(AttentionEngine&&) noexcept = default;
AttentionEngine& AttentionEngine::operator=(AttentionEngine&&) noexcept = default;

const BlockShape& AttentionEngine::shape() const { return impl_->shape; }
const ModeConfig& AttentionEngine::mode() const { return impl_->mode; }
const PagedKVConfig& AttentionEngine::kv_config() const { return impl_->kv; }

int AttentionEngine::step_kind(int step) const {
  const ModeConfig& m = impl_->mode;
  if (m.mode == Mode::losa) return step == 0 ? 0 : 1;
  if (m.mode == Mode::sparsed) {
    const int full = sparsed_full_steps(m);
    return step < full - 1 ? 0 : (step == full - 1 ? 1 : 2);
  }
  return 0;
}
void AttentionEngine::set_stage_hook(std::function<void(const char*)> hook) { impl_->hook = std::move(hook); }
const EnginePlan& AttentionEngine::current_plan() const { return impl_->plan; }
size_t AttentionEngine::workspace_bytes() const { return impl_->plan.workspace_bytes; }
size_t AttentionEngine::layer_state_bytes() const { return impl_->plan.layer_state_bytes; }

const EnginePlan& AttentionEngine::plan(int num_seqs, int max_pages_per_seq) {
  Impl& s = *impl_;
  LOSA_CHECK_ARG(num_seqs >= 1, "num_seqs", "must be >= 1, got ", num_seqs);
  LOSA_CHECK_ARG(max_pages_per_seq >= 1 && max_pages_per_seq <= s.kv.max_pages, "max_pages_per_seq",
                 "must be in [1, max_pages=", s.kv.max_pages, "], got ", max_pages_per_seq);
  if (s.mode.mode != Mode::dense) {  // every other mode selects pages with the top-k
    const int limit = topk_max_pages();
    LOSA_CHECK_ARG(max_pages_per_seq <= limit, "max_pages_per_seq", "must be at most ", limit, " for ",
                   mode_name(s.mode.mode), " on this device (the top-k stages a row's page scores in shared memory), got ",
                   max_pages_per_seq);
  }
  EnginePlan plan;
  plan.num_seqs = num_seqs;
  plan.max_pages = max_pages_per_seq;
  const int Hk = s.shape.num_kv_heads, B = s.shape.block_size, G = s.group;
  // At plan time, not construction: a test may force the kernel's stages in between.
  const int resident = attention_resident_ctas(s.kv.dtype, s.shape.head_dim, s.max_rows);
  auto splits_for = [&](int pages_estimate, int rows_estimate) {
    if (s.options.force_num_splits > 0) return s.options.force_num_splits;
    const int ctas = num_seqs * Hk * ceil_div(std::max(rows_estimate, 1), attention_rows_per_cta(s.max_rows));
    const int tiles = ceil_div(std::max(pages_estimate, 1), s.tile_pages);
    return std::min(kMaxAttentionSplits, choose_num_splits(ctas, tiles, resident));
  };
  // A row keeps budget/P pages plus the last: a union of `rows` rows has at most that many each.
  const int k1 = s.budget_pages() + 1;
  auto union_estimate = [&](int rows) {
    return static_cast<int>(std::min<int64_t>(max_pages_per_seq, static_cast<int64_t>(rows) * k1));
  };
  switch (s.mode.mode) {
    case Mode::dense: plan.splits_full = plan.splits_sparse = splits_for(max_pages_per_seq, s.max_rows); break;
    case Mode::quest: plan.splits_full = plan.splits_sparse = splits_for(union_estimate(s.max_rows), s.max_rows); break;
    case Mode::losa: {
      plan.splits_full = s.mode.losa_step0_quest ? splits_for(union_estimate(s.max_rows), s.max_rows)
                                                 : splits_for(max_pages_per_seq, s.max_rows);
      // The active set is data-dependent; plan for k_active (top-k) or a quarter of the block.
      const int active = s.mode.active_rule == ActiveRule::top_k ? std::max(1, s.mode.k_active) : std::max(1, B / 4);
      plan.splits_sparse = splits_for(union_estimate(active * G), active * G);
      // losa_complement's complement is one more split; the finalize merges at most kMaxAttentionSplits.
      if (s.mode.losa_complement) plan.splits_sparse = std::min(plan.splits_sparse, kMaxAttentionSplits - 1);
      break;
    }
    case Mode::sparsed: {
      plan.splits_full = splits_for(max_pages_per_seq, s.max_rows);
      const int kept = sparsed_pages_kept(max_pages_per_seq, s.mode.sparsed_select);
      plan.splits_sparse = splits_for(std::min<int64_t>(max_pages_per_seq, static_cast<int64_t>(kept) * G), s.max_rows);
      break;
    }
  }
  s.ws = workspace_layout(s.shape, s.kv, s.mode, plan);
  s.st = layer_state_layout(s.shape, s.kv, s.mode, plan, s.options.store_prefix_state);
  plan.workspace_bytes = s.ws.total;
  plan.layer_state_bytes = s.st.total;
  s.plan = plan;
  s.planned = true;
  s.workspace = nullptr;  // a new plan needs its workspace bound again
  return s.plan;
}

void AttentionEngine::bind_workspace(void* device, size_t bytes, Stream stream) {
  Impl& s = *impl_;
  LOSA_CHECK_ARG(s.planned, "plan", "call plan() before bind_workspace()");
  LOSA_CHECK_ARG(device != nullptr || s.plan.workspace_bytes == 0, "device", "must not be null");
  LOSA_CHECK_ARG(bytes >= s.plan.workspace_bytes, "bytes", "is ", bytes, " but the plan needs ", s.plan.workspace_bytes);
  LOSA_CHECK_ARG(reinterpret_cast<uintptr_t>(device) % 256 == 0, "device", "must be 256-byte aligned");
  // Tickets and union flags start at zero; every kernel leaves them zero again.
  LOSA_CUDA_CHECK(cudaMemsetAsync(device, 0, s.plan.workspace_bytes, stream));
  s.workspace = static_cast<char*>(device);
}

LayerState AttentionEngine::make_layer_state(void* device, size_t bytes, Stream stream) const {
  const Impl& s = *impl_;
  LOSA_CHECK_ARG(s.planned, "plan", "call plan() before make_layer_state()");
  LOSA_CHECK_ARG(bytes >= s.plan.layer_state_bytes, "bytes", "is ", bytes, " but the plan needs ",
                 s.plan.layer_state_bytes);
  LOSA_CHECK_ARG(device != nullptr || s.plan.layer_state_bytes == 0, "device", "must not be null");
  LOSA_CHECK_ARG(reinterpret_cast<uintptr_t>(device) % 256 == 0, "device", "must be 256-byte aligned");
  if (s.plan.layer_state_bytes) LOSA_CUDA_CHECK(cudaMemsetAsync(device, 0, s.plan.layer_state_bytes, stream));
  LayerState state;
  state.device = device;
  state.bytes = bytes;
  return state;
}

DeviceBuffer allocate_for_engine(size_t bytes) { return DeviceBuffer(bytes); }  // cudaMalloc aligns to 256

void AttentionEngine::run(const KVBatchView& kv, const StepIO& io, LayerState& state, int step, Stream stream) {
  Impl& s = *impl_;
  // Everything is checked before the first launch: a bad argument queues nothing.
  LOSA_CHECK_ARG(s.planned && s.workspace, "plan", "call plan() and bind_workspace() before run()");
  LOSA_CHECK_ARG(step >= 0, "step", "must be >= 0, got ", step);
  const PagedKVConfig& c = kv.config;
  LOSA_CHECK_ARG(c.num_kv_heads == s.kv.num_kv_heads && c.head_dim == s.kv.head_dim && c.page_size == s.kv.page_size &&
                     c.dtype == s.kv.dtype,
                 "kv", "has a different config than the engine was made for");
  LOSA_CHECK_ARG(kv.num_seqs == s.plan.num_seqs, "kv", "holds ", kv.num_seqs, " sequences but the plan has ",
                 s.plan.num_seqs);
  LOSA_CHECK_ARG(kv.max_reserved_pages <= s.plan.max_pages, "kv", "reserves up to ", kv.max_reserved_pages,
                 " pages per sequence but the plan has max_pages_per_seq=", s.plan.max_pages);
  LOSA_CHECK_ARG(!s.mode.bounds8 || kv.bounds8, "kv", "keeps no 8-bit bounds but mode.bounds8 is set");
  LOSA_CHECK_ARG(state.bytes >= s.plan.layer_state_bytes && (state.device || s.plan.layer_state_bytes == 0), "state",
                 "is not a layer state of this plan (make_layer_state)");
  const int Hq = s.shape.num_q_heads, Hk = s.shape.num_kv_heads, D = s.shape.head_dim;
  const int64_t q_row = static_cast<int64_t>(Hq) * D, kv_row = static_cast<int64_t>(Hk) * D;
  const TokenRows q{io.q.data, io.q.stride ? io.q.stride : q_row};
  const TokenRows k{io.k.data, io.k.stride ? io.k.stride : kv_row};
  const TokenRows v{io.v.data, io.v.stride ? io.v.stride : kv_row};
  const MutableTokenRows o{io.o, io.o_stride ? io.o_stride : q_row};
  LOSA_CHECK_ARG(q.data && k.data && v.data && o.data, "io", "q, k, v and o must be set");
  LOSA_CHECK_ARG(q.stride >= q_row && o.stride >= q_row, "io.q/o stride", "must be >= Hq * D = ", q_row);
  LOSA_CHECK_ARG(k.stride >= kv_row && v.stride >= kv_row, "io.k/v stride", "must be >= Hk * D = ", kv_row);
  const int elem = dtype_bytes(s.kv.dtype);
  for (int64_t stride : {q.stride, k.stride, v.stride, o.stride})
    LOSA_CHECK_ARG(stride * elem % 16 == 0, "io", "token strides must be multiples of 16 bytes");
  LOSA_CHECK_ARG(is_aligned(q.data, 16) && is_aligned(k.data, 16) && is_aligned(v.data, 16) &&
                     is_aligned(o.data, 16),
                 "io", "q, k, v and o must be 16-byte aligned");
  const bool losa = s.mode.mode == Mode::losa;
  if (step == 0) {
    state.block_version = kv.version;
  } else {
    LOSA_CHECK_ARG(state.block_version == kv.version, "kv",
                   "prefix changed within a block (appended or advanced since step 0); start a new block at step 0");
  }

  const int S = s.plan.num_seqs, B = s.shape.block_size, G = s.group;
  const int n_max = s.plan.max_pages;
  const Mode mode = s.mode.mode;
  const bool own = s.mode.attend == Attend::own;
  const bool full = !(losa && step > 0);
  const bool use_quest = mode == Mode::quest || (losa && (step > 0 || s.mode.losa_step0_quest));
  const bool sparsed_sparse = mode == Mode::sparsed && step >= sparsed_full_steps(s.mode);
  const bool switch_step = mode == Mode::sparsed && step == sparsed_full_steps(s.mode) - 1;
  const WorkspaceLayout& w = s.ws;
  const LayerStateLayout& st = s.st;
  char* state_base = static_cast<char*>(state.device);

  const PagedKVView view = kernel_view(kv, s.mode.bounds8);
  // A full step needs no active set: every token is active (the kernels read the view so), which
  // saves a launch and its round trips on every dense, QUEST and SparseD step and LoSA's step 0.
  ActiveSetView active{s.at<int32_t>(w.active_tokens), s.at<int32_t>(w.active_count), s.at<int32_t>(w.token_slot), B};
  if (full) active = ActiveSetView{nullptr, nullptr, nullptr, B, io.seq_mask};
  const ScopedStepPdl pdl(S > 1);  // every edge of a batch's step with PDL (launch.cuh)

  // 1. Which tokens get a fresh prefix part (a later LoSA step's; every token on a full step).
  if (!full) {
    s.mark("active_set");
    ActiveSetParams ap;
    ap.q = q;
    ap.q_ref = losa ? state_base + st.q_ref : nullptr;
    if (losa && s.mode.change_includes_kv) {
      ap.k = k;
      ap.k_ref = state_base + st.k_ref;
      ap.v = v;
      ap.v_ref = state_base + st.v_ref;
    }
    ap.block_size = B;
    ap.num_q_heads = Hq;
    ap.num_kv_heads = Hk;
    ap.rule = s.mode.active_rule == ActiveRule::top_k ? 1 : s.mode.active_rule == ActiveRule::tau ? 2 : 3;
    ap.k_active = s.mode.k_active;
    ap.tau = s.mode.tau;
    ap.delta_min = s.mode.delta_min;
    ap.delta = s.at<double>(w.delta);
    ap.ticket = s.at<unsigned>(w.active_ticket);
    ap.tokens = s.at<int32_t>(w.active_tokens);
    ap.count = s.at<int32_t>(w.active_count);
    ap.token_slot = s.at<int32_t>(w.token_slot);
    ap.seq_mask = io.seq_mask;
    launch_active_set(s.kv.dtype, D, ap, S, stream);
  }

  // 2. Which pages, then the prefix part over them.
  PageListView list;
  RowMaskView mask;
  s.loaded = Impl::Loaded::every_page;
  if (use_quest) {
    s.mark("page_scores");
    QuestScoreParams qp;
    qp.kv = view;
    qp.active = active;
    qp.q = q;
    qp.num_q_heads = Hq;
    qp.group = G;
    qp.max_rows = s.max_rows;
    qp.scores = s.at<float>(w.scores);
    qp.score_stride = w.score_stride;
    launch_quest_scores(s.kv.dtype, D, qp, s.row_tiles, S, n_max, stream);
    s.mark("topk");
    TopKParams tp;
    tp.scores = qp.scores;
    tp.score_stride = w.score_stride;
    tp.rows_per_kv_head = s.max_rows;
    tp.active_count = active.count;
    tp.rows_mask = active.tokens ? nullptr : active.seq_mask;  // a full step: no rows when sitting out
    tp.group = G;
    tp.kv = view;
    tp.keep_last = true;
    tp.k = s.budget_pages();
    tp.union_flags = s.at<uint8_t>(w.union_flags);
    tp.flag_stride = w.flag_stride;
    tp.union_ticket = s.at<unsigned>(w.union_ticket);
    tp.pages = s.at<int32_t>(w.lists);
    tp.phys = s.at<int32_t>(w.phys);
    tp.counts = s.at<int32_t>(w.counts);
    tp.list_stride = n_max;
    tp.row_bits = own ? s.at<uint32_t>(w.row_bits) : nullptr;
    tp.words = w.words;
    launch_topk(tp, Hk, S, n_max, stream);
    list = PageListView{tp.pages, tp.phys, tp.counts, n_max};
    if (own) mask = RowMaskView{tp.row_bits, w.words, s.max_rows, false};
    s.loaded = Impl::Loaded::quest_lists;
  } else if (sparsed_sparse) {
    list = PageListView{reinterpret_cast<int32_t*>(state_base + st.sparsed_lists),
                        reinterpret_cast<int32_t*>(state_base + st.sparsed_phys),
                        reinterpret_cast<int32_t*>(state_base + st.sparsed_counts), n_max};
    if (own) mask = RowMaskView{reinterpret_cast<uint32_t*>(state_base + st.sparsed_bits), w.words, G, true};
    s.loaded = Impl::Loaded::sparsed_lists;
  }
  const int num_splits = full && !use_quest ? s.plan.splits_full : s.plan.splits_sparse;
  s.mark("attention");
  PagedAttentionParams pa;
  pa.kv = view;
  pa.active = active;
  pa.list = list;
  pa.mask = mask;
  pa.q = q;
  pa.num_q_heads = Hq;
  pa.group = G;
  pa.max_rows = s.max_rows;
  pa.scale_log2 = s.scale * kLog2e;
  pa.num_splits = num_splits;
  pa.partial_o = s.at<float>(w.partial_o);
  pa.partial_lse = s.at<float>(w.partial_lse);
  const bool complement = losa && !full && s.mode.losa_complement;
  if (complement) pa.split_stride = num_splits + 1;
  launch_paged_attention(s.kv.dtype, D, pa, S, stream);
  if (complement) {
    // The step-0 queries over the same pages, then step 0's state less that: the last split.
    s.mark("anchor_attention");
    PagedAttentionParams anchor = pa;
    anchor.q = TokenRows{state_base + st.anchor_q, q_row};
    anchor.split_stride = 0;
    anchor.partial_o = s.at<float>(w.anchor_partial_o);
    anchor.partial_lse = s.at<float>(w.anchor_partial_lse);
    launch_paged_attention(s.kv.dtype, D, anchor, S, stream);
    s.mark("complement");
    ComplementParams cp;
    cp.active = active;
    cp.anchor_partial_o = anchor.partial_o;
    cp.anchor_partial_lse = anchor.partial_lse;
    cp.num_splits = num_splits;
    cp.max_rows = s.max_rows;
    cp.anchor_o = reinterpret_cast<const float*>(state_base + st.anchor_o);
    cp.anchor_lse = reinterpret_cast<const float*>(state_base + st.anchor_lse);
    cp.partial_o = pa.partial_o;
    cp.partial_lse = pa.partial_lse;
    cp.num_seqs = S;
    cp.num_q_heads = Hq;
    cp.num_kv_heads = Hk;
    launch_complement(D, cp, stream);
  }

  // 3. Split merge, cache update, block part, final merge.
  s.mark("finalize");
  FinalizeParams fp;
  fp.q = q;
  fp.k_blk = k;
  fp.v_blk = v;
  fp.active = active;
  fp.kv_len = kv.kv_len;
  fp.page_size = s.kv.page_size;
  fp.partial_o = pa.partial_o;
  fp.partial_lse = pa.partial_lse;
  fp.num_splits = complement ? num_splits + 1 : num_splits;
  fp.max_rows = s.max_rows;
  if (losa || s.options.store_prefix_state) {
    fp.prefix_o = reinterpret_cast<float*>(state_base + st.prefix_o);
    fp.prefix_lse = reinterpret_cast<float*>(state_base + st.prefix_lse);
  }
  if (losa) {
    fp.q_ref = state_base + st.q_ref;
    if (s.mode.change_includes_kv) {
      fp.k_ref = state_base + st.k_ref;
      fp.v_ref = state_base + st.v_ref;
    }
  }
  fp.o = o;
  fp.lse = switch_step ? s.at<float>(w.lse_full) : nullptr;
  fp.block_size = B;
  fp.num_q_heads = Hq;
  fp.num_kv_heads = Hk;
  fp.scale = s.scale;
  fp.list_counts = list.pages ? list.counts : nullptr;
  fp.loaded_every_page = !list.pages;
  fp.stats = io.stats ? io.stats : s.at<int32_t>(w.stats);
  fp.seq_mask = io.seq_mask;
  launch_finalize(s.kv.dtype, D, fp, S, stream);
  if (losa && step == 0 && s.mode.losa_complement) {  // step 0's state and queries, kept for the block
    s.mark("anchor_copy");
    AnchorCopyParams ac;
    ac.prefix_o = fp.prefix_o;
    ac.prefix_lse = fp.prefix_lse;
    ac.q_ref = fp.q_ref;
    ac.anchor_o = reinterpret_cast<float*>(state_base + st.anchor_o);
    ac.anchor_lse = reinterpret_cast<float*>(state_base + st.anchor_lse);
    ac.anchor_q = state_base + st.anchor_q;
    ac.num_seqs = S;
    ac.rows_per_seq = B * Hq;
    ac.head_dim = D;
    ac.q_row_words = D * elem / 4;
    ac.seq_mask = io.seq_mask;
    launch_anchor_copy(ac, stream);
  }

  // 4. SparseD's switch: head-specific pages by attention mass, kept for the block's rest.
  if (switch_step) {
    s.mark("sparsed_select");
    float* mass = s.at<float>(w.mass);
    LOSA_CUDA_CHECK(cudaMemsetAsync(mass, 0, w.mass_bytes, stream));
    SparsedMassParams mp;
    mp.kv = view;
    mp.q = q;
    mp.lse_full = s.at<float>(w.lse_full);
    mp.block_size = B;
    mp.num_q_heads = Hq;
    mp.group = G;
    mp.scale_log2 = s.scale * kLog2e;
    mp.mass = mass;
    mp.mass_stride = w.score_stride;
    mp.seq_mask = io.seq_mask;
    launch_sparsed_mass(s.kv.dtype, D, mp, s.row_tiles, S, n_max, stream);
    TopKParams tp;
    tp.scores = mass;
    tp.score_stride = w.score_stride;
    tp.rows_per_kv_head = G;
    tp.kv = view;
    tp.select_fraction = s.mode.sparsed_select;
    tp.seq_mask = io.seq_mask;
    tp.union_flags = s.at<uint8_t>(w.union_flags);
    tp.flag_stride = w.flag_stride;
    tp.union_ticket = s.at<unsigned>(w.union_ticket);
    tp.pages = reinterpret_cast<int32_t*>(state_base + st.sparsed_lists);
    tp.phys = reinterpret_cast<int32_t*>(state_base + st.sparsed_phys);
    tp.counts = reinterpret_cast<int32_t*>(state_base + st.sparsed_counts);
    tp.list_stride = n_max;
    tp.row_bits = reinterpret_cast<uint32_t*>(state_base + st.sparsed_bits);
    tp.words = w.words;
    launch_topk(tp, Hk, S, n_max, stream);
  }
  s.mark("done");
  s.last_step = step;
  s.last_full = full;
  s.last_seq_mask = io.seq_mask;
  s.last_scored = use_quest;
  s.last_view = kv;
}

namespace {
template <typename T>
std::vector<T> download_range(const void* device, size_t count, Stream stream) {
  std::vector<T> host(count);
  if (count) LOSA_CUDA_CHECK(cudaMemcpyAsync(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
  LOSA_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}
}  // namespace

StepStats AttentionEngine::last_stats(int seq, Stream stream) const {
  const Impl& s = *impl_;
  LOSA_CHECK_ARG(s.last_step >= 0, "engine", "has not run yet");
  LOSA_CHECK_ARG(seq >= 0 && seq < s.plan.num_seqs, "seq", "must be in [0, ", s.plan.num_seqs, "), got ", seq);
  const int Hk = s.shape.num_kv_heads;
  // The stats the step wrote into the workspace (a caller's StepIO::stats holds the same).
  const auto stats = download_range<int32_t>(s.at<int32_t>(s.ws.stats) + seq * (1 + Hk), 1 + Hk, stream);
  const auto len = download_range<int32_t>(s.last_view.kv_len + seq, 1, stream);
  StepStats st;
  st.mode = s.mode.mode;
  st.step = s.last_step;
  st.num_pages = (len[0] + s.kv.page_size - 1) / s.kv.page_size;
  st.active_tokens = stats[0];
  st.full_step = stats[0] == s.shape.block_size;
  st.pages_loaded.assign(stats.begin() + 1, stats.end());
  const int64_t elem = dtype_bytes(s.kv.dtype);
  const int64_t page_bytes = 2 * elem * s.kv.page_size * s.shape.head_dim;
  st.kv_bytes = std::accumulate(st.pages_loaded.begin(), st.pages_loaded.end(), int64_t{0}) * page_bytes *
                kv_reads_per_loaded_page(s.mode, s.last_step);
  const int64_t bound_bytes = s.mode.bounds8 ? 2 * s.shape.head_dim + 4 : 2 * elem * s.shape.head_dim;
  st.bounds_bytes = s.last_scored && st.active_tokens > 0 ? bound_bytes * Hk * st.num_pages : 0;
  return st;
}

StepDecisions AttentionEngine::last_decisions(int seq, const LayerState& state, Stream stream) const {
  const Impl& s = *impl_;
  LOSA_CHECK_ARG(s.last_step >= 0, "engine", "has not run yet");
  LOSA_CHECK_ARG(seq >= 0 && seq < s.plan.num_seqs, "seq", "must be in [0, ", s.plan.num_seqs, "), got ", seq);
  const int Hk = s.shape.num_kv_heads, Hq = s.shape.num_q_heads, G = s.group, B = s.shape.block_size;
  const int n_max = s.plan.max_pages, words = s.ws.words;
  const WorkspaceLayout& w = s.ws;
  const auto len = download_range<int32_t>(s.last_view.kv_len + seq, 1, stream);
  const int n = (len[0] + s.kv.page_size - 1) / s.kv.page_size;
  StepDecisions d;
  if (s.last_full) {
    const bool sat_out = s.last_seq_mask && download_range<uint8_t>(s.last_seq_mask + seq, 1, stream)[0] == 0;
    d.tokens.resize(sat_out ? 0 : B);
    std::iota(d.tokens.begin(), d.tokens.end(), 0);
  } else {
    const int active = download_range<int32_t>(s.at<int32_t>(w.active_count) + seq, 1, stream)[0];
    const auto tokens = download_range<int32_t>(s.at<int32_t>(w.active_tokens) + seq * B, B, stream);
    d.tokens.assign(tokens.begin(), tokens.begin() + active);
  }
  PageSelection& sel = d.selection;
  if (s.loaded == Impl::Loaded::every_page) {
    sel = select_all_pages(n, Hk);
    return d;
  }
  const bool quest = s.loaded == Impl::Loaded::quest_lists;
  const char* state_base = static_cast<const char*>(state.device);
  const int32_t* counts_dev = quest ? s.at<int32_t>(w.counts) : reinterpret_cast<const int32_t*>(state_base + s.st.sparsed_counts);
  const int32_t* lists_dev = quest ? s.at<int32_t>(w.lists) : reinterpret_cast<const int32_t*>(state_base + s.st.sparsed_lists);
  const auto counts = download_range<int32_t>(counts_dev + seq * Hk, Hk, stream);
  const auto lists = download_range<int32_t>(lists_dev + static_cast<size_t>(seq) * Hk * n_max, static_cast<size_t>(Hk) * n_max, stream);
  sel.num_pages = n;
  for (int h = 0; h < Hk; ++h)
    sel.kv_head_pages.emplace_back(lists.begin() + static_cast<size_t>(h) * n_max,
                                   lists.begin() + static_cast<size_t>(h) * n_max + counts[h]);
  if (s.mode.attend != Attend::own) return d;
  const int mask_rows = quest ? s.max_rows : G;
  const uint32_t* bits_dev = quest ? s.at<uint32_t>(w.row_bits) : reinterpret_cast<const uint32_t*>(state_base + s.st.sparsed_bits);
  const auto bits = download_range<uint32_t>(bits_dev + static_cast<size_t>(seq) * Hk * mask_rows * words,
                                             static_cast<size_t>(Hk) * mask_rows * words, stream);
  auto pages_of = [&](int kvh, int mask_row) {
    std::vector<int> pages;
    const uint32_t* b = &bits[(static_cast<size_t>(kvh) * mask_rows + mask_row) * words];
    for (int p = 0; p < n; ++p)
      if (b[p >> 5] >> (p & 31) & 1u) pages.push_back(p);
    return pages;
  };
  sel.row_pages.assign(s.shape.num_rows(), {});
  if (quest) {
    for (size_t a = 0; a < d.tokens.size(); ++a)
      for (int h = 0; h < Hq; ++h)
        sel.row_pages[d.tokens[a] * Hq + h] = pages_of(h / G, static_cast<int>(a) * G + h % G);
  } else {
    for (int t = 0; t < B; ++t)
      for (int h = 0; h < Hq; ++h) sel.row_pages[t * Hq + h] = pages_of(h / G, h % G);
  }
  return d;
}

}  // namespace losa::cuda
