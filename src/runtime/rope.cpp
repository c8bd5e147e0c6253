// RoPE frequencies as transformers' modeling_rope_utils computes them, and the rotation.
#include "losa/runtime/rope.hpp"

#include <algorithm>
#include <cmath>

#include "losa/errors.hpp"

namespace losa::runtime {
namespace {

constexpr double kPi = 3.14159265358979323846;

double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// Dimension index at which a frequency makes `rotations` turns over the original context.
double yarn_correction_dim(double rotations, int dim, double base, double max_pos) {
  return dim * std::log(max_pos / (rotations * 2.0 * kPi)) / (2.0 * std::log(base));
}

}  // namespace

RopeTable make_rope_table(const ModelConfig& config) {
  const int dim = config.head_dim;
  LOSA_CHECK_ARG(dim > 0 && dim % 2 == 0, "config.head_dim", "must be positive and even, got ", dim);
  const double base = config.rope_theta;
  const RopeScaling& s = config.rope_scaling;
  RopeTable t;
  t.inv_freq.resize(dim / 2);
  std::vector<double> plain(dim / 2);
  for (int i = 0; i < dim / 2; ++i) plain[i] = 1.0 / std::pow(base, (2.0 * i) / dim);

  switch (s.type) {
    case RopeType::plain: t.inv_freq = plain; break;
    case RopeType::linear:
      for (int i = 0; i < dim / 2; ++i) t.inv_freq[i] = plain[i] / s.factor;
      break;
    case RopeType::llama3: {
      const double old_len = s.original_max_position_embeddings;
      const double low_wavelen = old_len / s.low_freq_factor;
      const double high_wavelen = old_len / s.high_freq_factor;
      for (int i = 0; i < dim / 2; ++i) {
        const double wavelen = 2.0 * kPi / plain[i];
        double f = wavelen > low_wavelen ? plain[i] / s.factor : plain[i];
        if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {  // medium: interpolate
          const double smooth =
              (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          f = (1.0 - smooth) * f / s.factor + smooth * f;
        }
        t.inv_freq[i] = f;
      }
      break;
    }
    case RopeType::yarn: {
      if (s.attention_factor >= 0.0)
        t.attention_factor = s.attention_factor;
      else if (s.mscale != 0.0 && s.mscale_all_dim != 0.0)
        t.attention_factor = yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim);
      else
        t.attention_factor = yarn_mscale(s.factor, 1.0);
      const double max_pos = s.original_max_position_embeddings;
      double low = yarn_correction_dim(s.beta_fast, dim, base, max_pos);
      double high = yarn_correction_dim(s.beta_slow, dim, base, max_pos);
      if (s.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim - 1));
      if (low == high) high += 0.001;  // transformers: prevent a division by zero
      for (int i = 0; i < dim / 2; ++i) {
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extrapolation = 1.0 - ramp;
        t.inv_freq[i] = plain[i] / s.factor * (1.0 - extrapolation) + plain[i] * extrapolation;
      }
      break;
    }
  }
  // transformers keeps inv_freq as an fp32 buffer: the model was trained with these values.
  for (double& f : t.inv_freq) f = static_cast<double>(static_cast<float>(f));
  return t;
}

void apply_rope(const RopeTable& rope, int64_t position, int num_heads, int head_dim, float* x) {
  const int half = head_dim / 2;
  LOSA_CHECK_ARG(static_cast<int>(rope.inv_freq.size()) == half, "head_dim", "is ", head_dim,
                 " but the RoPE table has ", rope.inv_freq.size(), " frequencies");
  LOSA_CHECK_ARG(position >= 0, "position", "must be >= 0, got ", position);
  for (int i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * rope.inv_freq[i];
    const double c = std::cos(angle) * rope.attention_factor;
    const double s = std::sin(angle) * rope.attention_factor;
    for (int h = 0; h < num_heads; ++h) {
      float* xh = x + static_cast<size_t>(h) * head_dim;
      const double a = xh[i], b = xh[i + half];
      xh[i] = static_cast<float>(a * c - b * s);
      xh[i + half] = static_cast<float>(b * c + a * s);
    }
  }
}

}  // namespace losa::runtime
