#pragma once
// Storage element types and their host-side conversions. bf16 and fp16 round to nearest even,
// as the hardware conversions (__float2bfloat16_rn, __float2half_rn) do, so CPU and GPU agree.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace losa {

enum class DType { f32, bf16, f16 };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
  }
  return "?";
}

inline int dtype_bytes(DType t) { return t == DType::f32 ? 4 : 2; }

/// Parses "f32", "bf16" or "f16"; throws ArgumentError naming `argument` otherwise.
DType parse_dtype(const std::string& name, const char* argument = "dtype");

inline uint16_t float_to_bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_bits_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

uint16_t float_to_f16_bits(float x);
float f16_bits_to_float(uint16_t h);

/// Rounds x to the nearest value representable in `t` and returns it as float.
inline float round_to(DType t, float x) {
  switch (t) {
    case DType::bf16: return bf16_bits_to_float(float_to_bf16_bits(x));
    case DType::f16: return f16_bits_to_float(float_to_f16_bits(x));
    default: return x;
  }
}

/// The values a tensor of type `t` would hold: every element rounded to `t`.
inline std::vector<float> rounded_to(DType t, std::vector<float> x) {
  for (auto& v : x) v = round_to(t, v);
  return x;
}

/// Encodes `x` as `t` at `dst` (2 or 4 bytes).
inline void store_as(DType t, void* dst, float x) {
  if (t == DType::f32) {
    std::memcpy(dst, &x, 4);
  } else {
    const uint16_t bits = t == DType::bf16 ? float_to_bf16_bits(x) : float_to_f16_bits(x);
    std::memcpy(dst, &bits, 2);
  }
}

/// Decodes one element of type `t` at `src`.
inline float load_as(DType t, const void* src) {
  if (t == DType::f32) {
    float x;
    std::memcpy(&x, src, 4);
    return x;
  }
  uint16_t bits;
  std::memcpy(&bits, src, 2);
  return t == DType::bf16 ? bf16_bits_to_float(bits) : f16_bits_to_float(bits);
}

}  // namespace losa
