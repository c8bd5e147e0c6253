// Tensor views, the tensor list of a config, generated weights and the host-memory check.
#include "losa/runtime/weights.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <unistd.h>

#include "losa/errors.hpp"
#include "losa/random.hpp"
#include "assemble_weights.hpp"
#include "parallel.hpp"

namespace losa::runtime {
namespace {

// A standard normal value that depends only on (seed, tensor, element): Box-Muller on two
// uniforms from a counter hash, so generation is parallel and independent of thread count.
float counter_normal(uint64_t seed, uint64_t tensor, uint64_t element) {
  const uint64_t h1 = splitmix64_mix(seed ^ splitmix64_mix(tensor * 0x100000001b3ull ^ splitmix64_mix(element)));
  const uint64_t h2 = splitmix64_mix(h1);
  const double u1 = (static_cast<double>(h1 >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(h2 >> 11) * 0x1.0p-53;          // [0, 1)
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

// "64G" -> 64 * 2^30 (K, M, G, T: powers of 1024; an optional "iB" or "B" after it); -1 when
// the text is not such a count.
double parse_byte_count(const char* text) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || !(value >= 0.0)) return -1.0;
  double unit = 1.0;
  switch (*end) {
    case 'K': case 'k': unit = 0x1p10; ++end; break;
    case 'M': case 'm': unit = 0x1p20; ++end; break;
    case 'G': case 'g': unit = 0x1p30; ++end; break;
    case 'T': case 't': unit = 0x1p40; ++end; break;
    default: break;
  }
  if (unit > 1.0 && *end == 'i') ++end;
  if (*end == 'B') ++end;
  return *end == '\0' ? value * unit : -1.0;
}

}  // namespace

namespace detail {

void assign_roles(Weights& w, const std::map<std::string, TensorView>& views) {
  w.embed_tokens = views.at("model.embed_tokens.weight");
  w.norm = views.at("model.norm.weight");
  w.lm_head = w.config.tie_word_embeddings ? w.embed_tokens : views.at("lm_head.weight");
  w.layers.clear();
  for (int l = 0; l < w.config.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.input_layernorm = views.at(p + "input_layernorm.weight");
    lw.q_proj = views.at(p + "self_attn.q_proj.weight");
    lw.k_proj = views.at(p + "self_attn.k_proj.weight");
    lw.v_proj = views.at(p + "self_attn.v_proj.weight");
    lw.o_proj = views.at(p + "self_attn.o_proj.weight");
    lw.q_norm = views.at(p + "self_attn.q_norm.weight");
    lw.k_norm = views.at(p + "self_attn.k_norm.weight");
    lw.post_attention_layernorm = views.at(p + "post_attention_layernorm.weight");
    lw.gate_proj = views.at(p + "mlp.gate_proj.weight");
    lw.up_proj = views.at(p + "mlp.up_proj.weight");
    lw.down_proj = views.at(p + "mlp.down_proj.weight");
    w.layers.push_back(std::move(lw));
  }
}

}  // namespace detail

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void TensorView::row_to_float(int64_t r, float* out) const {
  const int64_t n = cols();
  const int bytes = dtype_bytes(dtype);
  const auto* src = static_cast<const unsigned char*>(data) + r * n * bytes;
  if (dtype == DType::f32) {
    std::memcpy(out, src, static_cast<size_t>(n) * 4);
  } else if (dtype == DType::bf16) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, src + 2 * i, 2);
      out[i] = bf16_bits_to_float(b);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = load_as(dtype, src + 2 * i);
  }
}

std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  std::vector<std::pair<std::string, std::vector<int64_t>>> t;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, H}});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", {H}});
    t.push_back({p + "self_attn.q_proj.weight", {c.q_dim(), H}});
    t.push_back({p + "self_attn.k_proj.weight", {c.kv_dim(), H}});
    t.push_back({p + "self_attn.v_proj.weight", {c.kv_dim(), H}});
    t.push_back({p + "self_attn.o_proj.weight", {H, c.q_dim()}});
    t.push_back({p + "self_attn.q_norm.weight", {D}});
    t.push_back({p + "self_attn.k_norm.weight", {D}});
    t.push_back({p + "post_attention_layernorm.weight", {H}});
    t.push_back({p + "mlp.gate_proj.weight", {I, H}});
    t.push_back({p + "mlp.up_proj.weight", {I, H}});
    t.push_back({p + "mlp.down_proj.weight", {H, I}});
  }
  t.push_back({"model.norm.weight", {H}});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, H}});
  return t;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 5) {
    bytes /= 1024.0;
    ++u;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%.2f %s", bytes, units[u]);
  return text;
}

void check_host_memory(int64_t bytes, const char* argument, const std::string& what) {
  LOSA_CHECK_ARG(bytes >= 0, argument, "needs a negative number of bytes for ", what,
                 " (a size overflowed)");
  // A shared machine, or a test that must be refused alike on every host, sets its own cap.
  const char* limit_text = std::getenv(kHostMemoryLimitVariable);
  if (limit_text != nullptr && *limit_text != '\0') {
    const double limit = parse_byte_count(limit_text);
    LOSA_CHECK_ARG(limit >= 0.0, kHostMemoryLimitVariable, "must be a byte count such as "
                   "68719476736, 64G or 512M, got '", limit_text, "'");
    LOSA_CHECK_ARG(static_cast<double>(bytes) <= limit, argument, "needs ",
                   format_bytes(static_cast<double>(bytes)), " for ", what, " but ",
                   kHostMemoryLimitVariable, " allows ", format_bytes(limit));
    return;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  const double host = pages > 0 && page > 0 ? static_cast<double>(pages) * page : 0.0;
  LOSA_CHECK_ARG(host == 0.0 || static_cast<double>(bytes) <= 0.9 * host, argument, "needs ",
                 format_bytes(static_cast<double>(bytes)), " for ", what, " but this host has ",
                 format_bytes(host), " of memory");
}

Weights make_random_weights(const ModelConfig& config, uint64_t seed, int num_threads) {
  const auto tensors = expected_tensors(config);
  // Sizes in 64 bits, checked before anything is allocated.
  int64_t total = 0;
  for (const auto& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.second) n *= d;
    total += n;
  }
  check_host_memory(total * 2, "config", "random bf16 weights of this config");
  auto buffer = std::make_shared<std::vector<uint16_t>>(static_cast<size_t>(total));
  Weights w;
  w.config = config;
  w.source = "random weights (seed " + std::to_string(seed) + ")";
  std::map<std::string, TensorView> views;
  int64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, shape] = tensors[i];
    TensorView v{name, DType::bf16, shape, buffer->data() + offset};
    const bool is_norm = shape.size() == 1;
    uint16_t* dst = buffer->data() + offset;
    detail::parallel_for(v.numel(), num_threads, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) {
        const float x = 0.02f * counter_normal(seed, i, static_cast<uint64_t>(e));
        dst[e] = float_to_bf16_bits(is_norm ? 1.0f + x : x);
      }
    });
    offset += v.numel();
    views[name] = v;
  }
  detail::assign_roles(w, views);
  w.storage = buffer;
  return w;
}

}  // namespace losa::runtime
