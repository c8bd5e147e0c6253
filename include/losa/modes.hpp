#pragma once
// Attention modes and their run-time configuration (DESIGN.md section 2).
#include <string>

namespace losa {

enum class Mode { dense, quest, losa, sparsed };
/// attend=own: each row attends only to the pages it selected; attend=union: to every page its
/// KV head loaded.
enum class Attend { own, union_ };
/// LoSA's active-set rule: the top k_active changed tokens; the fewest largest changes whose
/// share of the total change reaches tau; or every token whose own normalised change reaches
/// delta_min (a per-row threshold: a row's need of recomputation does not shrink because
/// another row, just unmasked, changed far more).
enum class ActiveRule { top_k, tau, delta_min };

const char* active_rule_name(ActiveRule r);  ///< "top_k", "tau", "delta_min"


const char* mode_name(Mode m);
Mode parse_mode(const std::string& name);  ///< "dense", "quest", "losa", "sparsed"

struct ModeConfig {
  Mode mode = Mode::dense;
  float softmax_scale = 0.0f;  ///< 0 means 1/sqrt(head_dim)

  // quest (and the sparse steps of losa)
  int budget_tokens = 256;  ///< per row: budget_tokens / page_size pages plus the last page
  Attend attend = Attend::own;
  /// Score pages from the cache's 8-bit conservative bounds (the cache must keep them):
  /// half the bounds bytes of bf16, looser bounds, so density is reported beside fp's.
  bool bounds8 = false;

  // losa
  ActiveRule active_rule = ActiveRule::tau;
  int k_active = 4;
  double tau = 0.5;
  double delta_min = 0.01;  ///< the delta_min rule's threshold on the normalised change
  bool losa_step0_quest = false;  ///< step 0 by quest instead of dense
  /// Active rows keep step 0's attention over the pages they do not load: their prefix part is
  /// the fresh attention over the loaded pages merged with step 0's dense state less the step-0
  /// query's attention over those same pages (the complement, exact for the step-0 query). Equals
  /// plain LoSA where every page is loaded, and the dense step-0 state where the query did not
  /// change. Needs a dense step 0; the loaded pages are read twice (once per query).
  bool losa_complement = false;
  /// Adds the normalised change of the token's block keys and values to its query change
  /// (the paper's combined QKV score).
  bool change_includes_kv = false;

  // sparsed
  int steps_per_block = 16;  ///< T, the decoder's step budget per block
  double sparsed_skip = 0.2;
  double sparsed_select = 0.3;
};

/// Throws ArgumentError naming the first bad field for a block of `block_size` tokens and pages
/// of `page_size` tokens.
void validate(const ModeConfig& config, int block_size, int page_size);

/// How many times a step reads each KV page it loads: twice for a LoSA step after step 0 with
/// losa_complement (once for the fresh queries, once for step 0's), else once. Bytes-moved counts
/// of every backend use it.
int kv_reads_per_loaded_page(const ModeConfig& config, int step);

/// Number of full (dense) steps SparseD takes before switching: max(1, ceil(skip * T)).
int sparsed_full_steps(const ModeConfig& config);

}  // namespace losa
