#include "forward_report.hpp"

#include <numeric>

namespace losa::runtime::detail {

double mean(const std::vector<double>& x) {
  return x.empty() ? 0.0 : std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
}

ForwardReport start_report(int num_layers, int num_seqs, const std::vector<int>& seqs) {
  ForwardReport report;
  report.layer_density.assign(num_layers, 0.0);
  report.layer_active_tokens.assign(num_layers, 0.0);
  report.layer_kv_bytes.assign(num_layers, 0);
  report.layer_bounds_bytes.assign(num_layers, 0);
  report.sequence_layer_density.assign(static_cast<size_t>(num_seqs) * num_layers, 0.0);
  report.sequence_layer_active_tokens.assign(static_cast<size_t>(num_seqs) * num_layers, 0.0);
  report.took_part.assign(num_seqs, 0);
  for (int s : seqs) report.took_part[s] = 1;
  return report;
}

void add_layer_stats(ForwardReport& report, int layer, const std::vector<int>& seqs,
                     const std::vector<StepStats>& stats) {
  int with_prefix = 0;
  for (size_t j = 0; j < seqs.size(); ++j) {
    const StepStats& st = stats[j];
    if (st.num_pages > 0) {
      report.layer_density[layer] += st.density();
      ++with_prefix;
    }
    report.layer_active_tokens[layer] += st.active_tokens / static_cast<double>(seqs.size());
    report.layer_kv_bytes[layer] += st.kv_bytes;
    report.layer_bounds_bytes[layer] += st.bounds_bytes;
    const size_t at = static_cast<size_t>(seqs[j]) * report.layer_density.size() + layer;
    report.sequence_layer_density[at] = st.density();
    report.sequence_layer_active_tokens[at] = st.active_tokens;
  }
  if (with_prefix > 0) report.layer_density[layer] /= with_prefix;
}

}  // namespace losa::runtime::detail

namespace losa::runtime {

double ForwardReport::density() const { return detail::mean(layer_density); }

double ForwardReport::active_tokens() const { return detail::mean(layer_active_tokens); }

int64_t ForwardReport::kv_bytes() const {
  return std::accumulate(layer_kv_bytes.begin(), layer_kv_bytes.end(), int64_t{0});
}

namespace {
std::vector<double> layer_means(const std::vector<double>& per_sequence_layer, size_t num_layers) {
  std::vector<double> out(num_layers ? per_sequence_layer.size() / num_layers : 0);
  for (size_t s = 0; s < out.size(); ++s)
    out[s] = std::accumulate(per_sequence_layer.begin() + s * num_layers,
                             per_sequence_layer.begin() + (s + 1) * num_layers, 0.0) / num_layers;
  return out;
}
}  // namespace

std::vector<double> ForwardReport::sequence_density() const {
  return layer_means(sequence_layer_density, layer_density.size());
}

std::vector<double> ForwardReport::sequence_active_tokens() const {
  return layer_means(sequence_layer_active_tokens, layer_density.size());
}

}  // namespace losa::runtime
