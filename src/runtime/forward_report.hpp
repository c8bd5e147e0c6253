#pragma once
// Building a ForwardReport from the per-(layer, sequence) StepStats of one forward: one
// implementation for every backend.
#include <vector>

#include "losa/runtime/backend.hpp"

namespace losa::runtime::detail {

/// A report for num_layers layers and num_seqs sequences, of which `seqs` take part.
ForwardReport start_report(int num_layers, int num_seqs, const std::vector<int>& seqs);

/// The mean of x, 0 for none (the report's means and the decoder's).
double mean(const std::vector<double>& x);

/// Adds layer `layer`'s statistics: stats[j] belongs to sequence seqs[j].
void add_layer_stats(ForwardReport& report, int layer, const std::vector<int>& seqs,
                     const std::vector<StepStats>& stats);

}  // namespace losa::runtime::detail
