#include "byte_level.hpp"

#include "utf8.hpp"

namespace losa::runtime::byte_level {
namespace {

/// bytes_to_unicode() of GPT-2's encoder.py: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes take the code points 256, 257, ... in byte order.
std::array<char32_t, 256> byte_code_points() {
  std::array<char32_t, 256> code_points{};
  char32_t next_extra = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    code_points[b] = printable ? static_cast<char32_t>(b) : next_extra++;
  }
  return code_points;
}

/// Code point -> byte for the 324 code points below 0x144 the alphabet uses; -1 elsewhere.
const std::array<int, 0x144>& char_to_byte() {
  static const std::array<int, 0x144> table = [] {
    std::array<int, 0x144> t;
    t.fill(-1);
    const auto code_points = byte_code_points();
    for (int b = 0; b < 256; ++b) t[code_points[b]] = b;
    return t;
  }();
  return table;
}

}  // namespace

const std::array<std::string, 256>& byte_to_char() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    const auto code_points = byte_code_points();
    for (int b = 0; b < 256; ++b) utf8::append_code_point(t[b], code_points[b]);
    return t;
  }();
  return table;
}

std::string token_to_bytes(std::string_view token) {
  const auto& table = char_to_byte();
  std::string bytes;
  bytes.reserve(token.size());
  std::size_t pos = 0;
  while (pos < token.size()) {
    const auto lead = static_cast<unsigned char>(token[pos]);
    char32_t cp = 0;
    std::size_t length = 0;
    if (lead < 0x80) {
      cp = lead;
      length = 1;
    } else if ((lead & 0xE0) == 0xC0 && pos + 1 < token.size()) {  // the alphabet is < U+0800
      cp = ((lead & 0x1F) << 6) | (static_cast<unsigned char>(token[pos + 1]) & 0x3F);
      length = 2;
    }
    if (length == 0 || cp >= table.size() || table[cp] < 0) return std::string(token);
    bytes += static_cast<char>(table[cp]);
    pos += length;
  }
  return bytes;
}

}  // namespace losa::runtime::byte_level
