// LoSA's change score and active-set rules: naive reference.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "losa/errors.hpp"
#include "losa/ops.hpp"

namespace losa {
namespace {

// sum over the token's heads of |x - ref|^2 and |ref|^2; x, ref: [block_size, heads, head_dim].
void token_change(const float* x, const float* ref, int token, int heads, int head_dim,
                  double* diff, double* norm) {
  const size_t base = static_cast<size_t>(token) * heads * head_dim;
  for (size_t e = 0; e < static_cast<size_t>(heads) * head_dim; ++e) {
    const double r = ref[base + e], dx = static_cast<double>(x[base + e]) - r;
    *diff += dx * dx;
    *norm += r * r;
  }
}

double normalised(double diff, double norm) {
  if (norm > 0.0) return diff / norm;
  return diff > 0.0 ? std::numeric_limits<double>::infinity() : 0.0;
}

}  // namespace

std::vector<double> change_scores(const BlockShape& shape, const float* q, const float* q_ref,
                                  const float* k, const float* k_ref, const float* v,
                                  const float* v_ref) {
  validate(shape);
  LOSA_CHECK_ARG(q != nullptr && q_ref != nullptr, "q/q_ref", "must not be null");
  const bool with_kv = k || k_ref || v || v_ref;
  LOSA_CHECK_ARG(!with_kv || (k && k_ref && v && v_ref), "k/k_ref/v/v_ref",
                 "must be all given or all null");
  std::vector<double> delta(shape.block_size);
  for (int t = 0; t < shape.block_size; ++t) {
    double diff = 0.0, norm = 0.0;
    token_change(q, q_ref, t, shape.num_q_heads, shape.head_dim, &diff, &norm);
    delta[t] = normalised(diff, norm);
    if (with_kv) {
      double kd = 0.0, kn = 0.0, vd = 0.0, vn = 0.0;
      token_change(k, k_ref, t, shape.num_kv_heads, shape.head_dim, &kd, &kn);
      token_change(v, v_ref, t, shape.num_kv_heads, shape.head_dim, &vd, &vn);
      delta[t] += normalised(kd, kn) + normalised(vd, vn);
    }
  }
  return delta;
}

std::vector<int> select_active_tokens(const std::vector<double>& delta, ActiveRule rule,
                                      int k_active, double tau, double delta_min) {
  const int n = static_cast<int>(delta.size());
  if (rule == ActiveRule::top_k)
    LOSA_CHECK_ARG(k_active >= 0 && k_active <= n, "k_active", "must be in [0, ", n, "], got ",
                   k_active);
  else if (rule == ActiveRule::tau)
    LOSA_CHECK_ARG(tau > 0.0 && tau <= 1.0, "tau", "must be in (0, 1], got ", tau);
  else
    LOSA_CHECK_ARG(std::isfinite(delta_min) && delta_min > 0.0, "delta_min",
                   "must be finite and > 0, got ", delta_min);
  for (int i = 0; i < n; ++i)
    LOSA_CHECK_ARG(delta[i] >= 0.0, "delta", "entry ", i, " is ", delta[i],
                   "; change scores are >= 0 (NaN is rejected)");
  std::vector<int> order;
  for (int i = 0; i < n; ++i)
    if (delta[i] > 0.0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return delta[a] > delta[b]; });
  size_t take = 0;
  if (rule == ActiveRule::top_k) {
    take = std::min(order.size(), static_cast<size_t>(k_active));
  } else if (rule == ActiveRule::delta_min) {
    while (take < order.size() && delta[order[take]] >= delta_min) ++take;
  } else {
    double total = 0.0;
    for (int i : order) total += delta[i];
    const double target = tau * total;  // > 0 whenever any token changed
    double reached = 0.0;
    while (take < order.size() && reached < target) reached += delta[order[take++]];
  }
  order.resize(take);
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace losa
