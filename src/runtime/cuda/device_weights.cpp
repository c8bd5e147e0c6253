#include "device_weights.hpp"

#include <cstring>
#include <initializer_list>

namespace losa::runtime::cuda {
namespace {

using losa::cuda::DeviceBuffer;

// Tensors converted to bf16 and concatenated along their first dimension (rows of [out, in]).
DeviceBuffer upload_bf16(std::initializer_list<const TensorView*> parts) {
  int64_t elements = 0;
  for (const TensorView* t : parts) elements += t->numel();
  DeviceBuffer buffer(static_cast<size_t>(elements) * 2);
  int64_t at = 0;
  std::vector<uint16_t> converted;
  for (const TensorView* t : parts) {
    const size_t bytes = static_cast<size_t>(t->numel()) * 2;
    if (t->dtype == DType::bf16) {
      buffer.upload(t->data, bytes, static_cast<size_t>(at) * 2);
    } else {
      converted.resize(static_cast<size_t>(t->numel()));
      const int width = dtype_bytes(t->dtype);
      const auto* src = static_cast<const unsigned char*>(t->data);
      for (size_t i = 0; i < converted.size(); ++i) converted[i] = float_to_bf16_bits(load_as(t->dtype, src + i * width));
      buffer.upload(converted.data(), bytes, static_cast<size_t>(at) * 2);
    }
    at += t->numel();
  }
  return buffer;
}

}  // namespace

int64_t device_weight_bytes(const Weights& w) {
  int64_t elements = w.embed_tokens.numel() + w.norm.numel();
  if (!w.config.tie_word_embeddings) elements += w.lm_head.numel();
  for (const LayerWeights& l : w.layers)
    for (const TensorView* t : {&l.input_layernorm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.q_norm, &l.k_norm,
                                &l.post_attention_layernorm, &l.gate_proj, &l.up_proj, &l.down_proj})
      elements += t->numel();
  return elements * 2;
}

DeviceWeights upload_weights(const Weights& w) {
  DeviceWeights d;
  d.embed = upload_bf16({&w.embed_tokens});
  d.norm = upload_bf16({&w.norm});
  if (!w.config.tie_word_embeddings) d.lm_head_storage = upload_bf16({&w.lm_head});
  for (const LayerWeights& l : w.layers) {
    DeviceLayerWeights dl;
    dl.input_norm = upload_bf16({&l.input_layernorm});
    dl.post_norm = upload_bf16({&l.post_attention_layernorm});
    dl.q_norm = upload_bf16({&l.q_norm});
    dl.k_norm = upload_bf16({&l.k_norm});
    dl.qkv = upload_bf16({&l.q_proj, &l.k_proj, &l.v_proj});
    dl.o = upload_bf16({&l.o_proj});
    dl.gate_up = upload_bf16({&l.gate_proj, &l.up_proj});
    dl.down = upload_bf16({&l.down_proj});
    d.layers.push_back(std::move(dl));
  }
  d.bytes = device_weight_bytes(w);
  return d;
}

}  // namespace losa::runtime::cuda
