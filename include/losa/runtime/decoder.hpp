#pragma once
// SDAR's block-diffusion generation (DESIGN.md section 6), on any ModelBackend:
//   prefill floor(P/B)*B prompt tokens; then block after block: B positions, the prompt's last
//   P mod B tokens fixed in the first block and masks elsewhere; denoising steps unmask tokens
//   by the strategy until none is masked; the commit forward writes the block's K/V; stop after
//   the block where an eos or stop id appears, or when max_new_tokens are generated.
// A batch of prompts decodes together, one sequence each, block by block in lockstep: a sequence
// that finished its block's denoising early waits (takes no part) until the batch commits, so
// its results do not depend on the other prompts; a sequence that stopped keeps its slot.
// Each sequence's block is reported to a BlockObserver the moment it is final (before its
// commit forward), so that a caller can stream the answer and end a sequence early.
#include <cstdint>
#include <functional>
#include <vector>

#include "losa/runtime/backend.hpp"
#include "losa/runtime/sampler.hpp"
#include "losa/runtime/strategies.hpp"

namespace losa::runtime {

struct DecodeOptions {
  int block_size = 0;       ///< B; 0: the model folder's block_size
  int steps = 4;            ///< denoising steps per block, 1..B
  Strategy strategy = Strategy::low_confidence_dynamic;
  double threshold = 0.9;   ///< low_confidence_dynamic's confidence threshold
  SamplerParams sampling;   ///< temperature 0: greedy
  uint64_t seed = 0;
  /// The `sequence` of each prompt's sample keys; empty: the prompt's index. A prompt keeps its
  /// draws whatever else is in the batch, or where, when it keeps its id.
  std::vector<int64_t> sequence_ids;
  int64_t max_new_tokens = 128;
  int32_t mask_token_id = -1;     ///< -1: the model folder's
  std::vector<int32_t> stop_ids;  ///< stop ids besides the model's eos ids
  bool use_model_eos = true;
  /// Attention mode, page size, KV dtype, prefill chunk. block_size is set from the above and
  /// mode.steps_per_block (SparseD's T) from `steps`.
  ForwardOptions forward;
};

/// One block of one sequence.
struct BlockRecord {
  int64_t block = 0;             ///< 0 = the first decoded block
  int steps = 0;                 ///< denoising forwards (the commit not counted)
  bool committed = false;        ///< its K/V were written (not for a sequence's last block)
  double active_tokens = 0.0;    ///< mean over its forwards and layers
  double density = 0.0;          ///< mean over its forwards and layers
  double seconds = 0.0;          ///< wall time of the batch's whole block
  /// Per layer, mean over its forwards: where the active sets and the loaded pages differ.
  std::vector<double> layer_active_tokens, layer_density;
};

struct SequenceResult {
  std::vector<int32_t> generated;  ///< up to max_new_tokens, up to and including the first stop id
  bool stopped = false;            ///< an eos or stop id ended it
  bool halted = false;             ///< the BlockObserver ended it (a stop string, say)
  std::vector<BlockRecord> blocks;
};

/// One sequence's block, final: what decode() hands its BlockObserver.
struct FinalBlock {
  int sequence = 0;   ///< the prompt's index
  int64_t block = 0;  ///< 0 = the first decoded block
  /// The block's generated tokens (the prompt's tail left out), cut as SequenceResult::generated
  /// is: after the first stop id and at max_new_tokens. A sequence's blocks, joined, are its
  /// `generated`. Never empty.
  std::vector<int32_t> tokens;
  bool ends_with_stop_id = false;  ///< `tokens` ends with an eos or stop id
  bool last = false;  ///< the sequence ends here (a stop id, or max_new_tokens reached)
};

/// Called for each sequence's block as soon as it is final, sequences in order within a block
/// round, before the round's commit forward. Returning false ends that sequence after this block:
/// it takes no part in later rounds (its slot stays) and its result says `halted`. An exception
/// propagates out of decode().
using BlockObserver = std::function<bool(const FinalBlock&)>;

struct DecodeProgress {
  int64_t blocks_done = 0, blocks_total = 0;  ///< rounds of the batch
  int64_t tokens = 0;                         ///< generated so far, all sequences
  double seconds = 0.0;
  double mean_density = 0.0;
};

struct DecodeResult {
  std::vector<SequenceResult> sequences;
  double seconds = 0.0;
  int block_size = 0, steps = 0;
};

/// The options with the model folder's defaults filled in and everything validated
/// (ArgumentError naming the field: block_size, steps, threshold, max_new_tokens, ...).
DecodeOptions resolve_options(const DecodeOptions& options, const ModelConfig& config);

/// Decodes every prompt (token ids in [0, vocab)) as one batch on `backend`. `progress` is
/// called after each block round; `on_block` for each sequence's block as it becomes final.
DecodeResult decode(ModelBackend& backend, const std::vector<std::vector<int32_t>>& prompts,
                    const DecodeOptions& options,
                    const std::function<void(const DecodeProgress&)>& progress = {},
                    const BlockObserver& on_block = {});

}  // namespace losa::runtime
