#pragma once
// The shape of one layer-step: a block of `block_size` tokens, grouped-query attention.
// Query-side tensors are [block_size, num_q_heads, head_dim]; block keys and values are
// [block_size, num_kv_heads, head_dim]. Query head h reads KV head h / group_size().
#include <cmath>

namespace losa {

struct BlockShape {
  int block_size = 16;
  int num_q_heads = 32;
  int num_kv_heads = 8;
  int head_dim = 128;

  int group_size() const { return num_q_heads / num_kv_heads; }
  int num_rows() const { return block_size * num_q_heads; }  ///< query rows (token, q head)
  int kv_head_of(int q_head) const { return q_head / group_size(); }
  /// 1/sqrt(head_dim), the default softmax scale.
  float default_scale() const { return 1.0f / std::sqrt(static_cast<float>(head_dim)); }
};

/// Throws ArgumentError naming the first bad field (non-positive sizes, num_q_heads not a
/// multiple of num_kv_heads, unsupported head_dim).
void validate(const BlockShape& shape);

}  // namespace losa
