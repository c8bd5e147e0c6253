#include "losa/attention_state.hpp"

#include <cmath>
#include <limits>

namespace losa {

void merge_state(const float* o_a, float lse_a, const float* o_b, float lse_b, int head_dim,
                 float* o, float* lse) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const double la = lse_a, lb = lse_b;
  if (la == ninf && lb == ninf) {  // both empty: the merge is empty too
    for (int d = 0; d < head_dim; ++d) o[d] = 0.0f;
    *lse = -std::numeric_limits<float>::infinity();
    return;
  }
  const double m = la > lb ? la : lb;
  const double wa = std::exp(la - m), wb = std::exp(lb - m);  // exp(-inf) = 0 for an empty side
  const double sum = wa + wb;
  for (int d = 0; d < head_dim; ++d)
    o[d] = static_cast<float>((wa * o_a[d] + wb * o_b[d]) / sum);
  *lse = static_cast<float>(m + std::log(sum));
}

void subtract_state(const float* o_a, float lse_a, const float* o_b, float lse_b, int head_dim,
                    float* o, float* lse) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const double la = lse_a, lb = lse_b;
  const double w = (lb == ninf || la == ninf) ? 0.0 : std::exp(lb - la);  // b's share of a's mass
  const double rest = 1.0 - w;
  if (la == ninf || rest < kSubtractEmptyBelow) {
    for (int d = 0; d < head_dim; ++d) o[d] = 0.0f;
    *lse = -std::numeric_limits<float>::infinity();
    return;
  }
  for (int d = 0; d < head_dim; ++d)
    o[d] = static_cast<float>((static_cast<double>(o_a[d]) - w * o_b[d]) / rest);
  *lse = static_cast<float>(la + std::log(rest));
}

}  // namespace losa
