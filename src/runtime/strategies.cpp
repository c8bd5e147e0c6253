// SDAR's remasking strategies, with the number of tokens clamped to the masks left.
#include "losa/runtime/strategies.hpp"

#include <algorithm>

#include "losa/errors.hpp"

namespace losa::runtime {

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::sequential: return "sequential";
    case Strategy::low_confidence_static: return "low_confidence_static";
    case Strategy::low_confidence_dynamic: return "low_confidence_dynamic";
  }
  return "?";
}

Strategy parse_strategy(const std::string& name) {
  if (name == "sequential") return Strategy::sequential;
  if (name == "low_confidence_static") return Strategy::low_confidence_static;
  if (name == "low_confidence_dynamic") return Strategy::low_confidence_dynamic;
  throw ArgumentError("parse_strategy", "strategy",
                      "must be sequential, low_confidence_static or low_confidence_dynamic, got '" +
                          name + "'");
}

std::vector<int> transfer_schedule(int block_size, int steps) {
  LOSA_CHECK_ARG(block_size > 0, "block_size", "must be > 0, got ", block_size);
  LOSA_CHECK_ARG(steps >= 1 && steps <= block_size, "steps", "must be in [1, block_size=",
                 block_size, "] so that every step unmasks a token, got ", steps);
  std::vector<int> n(steps, block_size / steps);
  for (int i = 0; i < block_size % steps; ++i) ++n[i];
  return n;
}

std::vector<int> positions_to_unmask(Strategy strategy, const std::vector<uint8_t>& masked,
                                     const TokenProposal* proposals, int n, double threshold) {
  LOSA_CHECK_ARG(proposals != nullptr, "proposals", "must not be null");
  LOSA_CHECK_ARG(n >= 1, "n", "must be >= 1, got ", n);
  std::vector<int> candidates;
  for (int i = 0; i < static_cast<int>(masked.size()); ++i)
    if (masked[i]) candidates.push_back(i);
  n = std::min<int>(n, static_cast<int>(candidates.size()));
  std::vector<int> chosen;
  if (strategy == Strategy::sequential) {
    chosen.assign(candidates.begin(), candidates.begin() + n);
    return chosen;
  }
  if (strategy == Strategy::low_confidence_dynamic) {
    for (int i : candidates)
      if (proposals[i].confidence > threshold) chosen.push_back(i);
    if (static_cast<int>(chosen.size()) >= n) return chosen;
    chosen.clear();
  }
  // The n most confident, ties to the lower index (stable sort of ascending indices).
  std::stable_sort(candidates.begin(), candidates.end(), [&](int a, int b) {
    return proposals[a].confidence > proposals[b].confidence;
  });
  chosen.assign(candidates.begin(), candidates.begin() + n);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace losa::runtime
