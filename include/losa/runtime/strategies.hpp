#pragma once
// SDAR's unmasking strategies: which masked positions of a block take their proposed token at a
// denoising step.
#include <cstdint>
#include <string>
#include <vector>

#include "losa/runtime/sampler.hpp"

namespace losa::runtime {

enum class Strategy { sequential, low_confidence_static, low_confidence_dynamic };

const char* strategy_name(Strategy s);
/// "sequential", "low_confidence_static", "low_confidence_dynamic"; ArgumentError otherwise.
Strategy parse_strategy(const std::string& name);

/// Tokens to unmask at each of `steps` steps of a block of `block_size`: block_size / steps,
/// plus one for the first block_size % steps steps (SDAR's get_num_transfer_tokens).
/// Needs 1 <= steps <= block_size so that every step unmasks at least one token.
std::vector<int> transfer_schedule(int block_size, int steps);

/// Positions (ascending) to unmask. masked: [B] (non-zero where the position is still a mask);
/// proposals: [B]; n: the schedule's count for this step, clamped here to the masks left.
///  - sequential: the leftmost n masked positions;
///  - low_confidence_static: the n masked positions of highest confidence (ties: lower index);
///  - low_confidence_dynamic: every masked position with confidence > threshold when there are
///    at least n of them, else as static.
/// SDAR's generate.py does not clamp n: when n exceeds the masks left, its top-k also picks
/// positions whose confidence it set to -inf, i.e. tokens already fixed (the prompt's tail in
/// the first block), and overwrites them with fresh proposals. We never touch a fixed token.
std::vector<int> positions_to_unmask(Strategy strategy, const std::vector<uint8_t>& masked,
                                     const TokenProposal* proposals, int n, double threshold);

}  // namespace losa::runtime
