#pragma once
// UTF-8 scanning shared by encode (validation), decode (lossy conversion) and the stream decoder
// (which holds back an incomplete character). One scanner, so that the three agree.
#include <cstddef>
#include <string>
#include <string_view>

namespace losa::runtime::utf8 {

/// What starts at a byte position: a whole character, an ill-formed sequence, or the start of a
/// character that the bytes end before finishing.
struct Unit {
  enum class Kind { kValid, kInvalid, kTruncated };
  Kind kind;
  /// Bytes the unit covers. For kInvalid: the "maximal subpart of an ill-formed subsequence"
  /// (Unicode 15, section 3.9, U+FFFD substitution), which is what Python's errors="replace" and
  /// Rust's String::from_utf8_lossy (Hugging Face's byte-level decoder) replace by one U+FFFD.
  std::size_t length;
};

/// The unit starting at `pos` (< bytes.size()).
Unit next_unit(std::string_view bytes, std::size_t pos);

/// Byte offset of the first byte that is not part of a well-formed character, or npos.
std::size_t first_invalid(std::string_view bytes);

/// Length of the longest prefix that ends at a unit boundary and leaves out only a trailing
/// truncated character: what can be shown now without ever taking it back.
std::size_t complete_prefix_length(std::string_view bytes);

/// `bytes` with every ill-formed or truncated unit replaced by U+FFFD, as the reference decoder.
std::string replace_invalid(std::string_view bytes);

/// Appends the UTF-8 encoding of a code point (< 0x110000, not a surrogate).
void append_code_point(std::string& out, char32_t code_point);

}  // namespace losa::runtime::utf8
