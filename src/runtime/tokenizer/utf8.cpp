#include "utf8.hpp"

namespace losa::runtime::utf8 {
namespace {

/// The allowed range of the second byte after a lead byte (Unicode Table 3-7): the narrow
/// ranges after E0, ED, F0 and F4 exclude overlong forms, surrogates and code points above
/// U+10FFFF. Returns the sequence length, or 0 for a byte that cannot start a character.
int sequence_length(unsigned char lead, unsigned char* second_lo, unsigned char* second_hi) {
  *second_lo = 0x80;
  *second_hi = 0xBF;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (lead == 0xE0) *second_lo = 0xA0;
    if (lead == 0xED) *second_hi = 0x9F;
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (lead == 0xF0) *second_lo = 0x90;
    if (lead == 0xF4) *second_hi = 0x8F;
    return 4;
  }
  return 0;  // 80..C1 (continuation or overlong lead), F5..FF
}

}  // namespace

Unit next_unit(std::string_view bytes, std::size_t pos) {
  const auto lead = static_cast<unsigned char>(bytes[pos]);
  unsigned char lo = 0, hi = 0;
  const int length = sequence_length(lead, &lo, &hi);
  if (length == 0) return {Unit::Kind::kInvalid, 1};
  for (int i = 1; i < length; ++i) {
    if (pos + i >= bytes.size()) return {Unit::Kind::kTruncated, static_cast<std::size_t>(i)};
    const auto byte = static_cast<unsigned char>(bytes[pos + i]);
    if (byte < lo || byte > hi) return {Unit::Kind::kInvalid, static_cast<std::size_t>(i)};
    lo = 0x80;
    hi = 0xBF;
  }
  return {Unit::Kind::kValid, static_cast<std::size_t>(length)};
}

std::size_t first_invalid(std::string_view bytes) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    if (static_cast<unsigned char>(bytes[pos]) < 0x80) {  // ASCII runs dominate: skip them fast
      ++pos;
      continue;
    }
    const Unit unit = next_unit(bytes, pos);
    if (unit.kind != Unit::Kind::kValid) return pos;
    pos += unit.length;
  }
  return std::string_view::npos;
}

std::size_t complete_prefix_length(std::string_view bytes) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const Unit unit = next_unit(bytes, pos);
    if (unit.kind == Unit::Kind::kTruncated) return pos;
    pos += unit.length;
  }
  return pos;
}

std::string replace_invalid(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const Unit unit = next_unit(bytes, pos);
    if (unit.kind == Unit::Kind::kValid) {
      out.append(bytes.substr(pos, unit.length));
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
    }
    pos += unit.length;
  }
  return out;
}

void append_code_point(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace losa::runtime::utf8
