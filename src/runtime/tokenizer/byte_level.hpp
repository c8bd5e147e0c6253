#pragma once
// GPT-2's byte-level alphabet: every byte stands for one printable character, so that BPE runs
// on text without spaces or control characters. The vocabulary stores tokens in this alphabet.
#include <array>
#include <string>
#include <string_view>

namespace losa::runtime::byte_level {

/// The character (as UTF-8) that stands for each byte value (GPT-2's bytes_to_unicode).
const std::array<std::string, 256>& byte_to_char();

/// A token as the vocabulary spells it (byte-level characters) -> the bytes it stands for. A
/// token with a character outside the alphabet (an added token such as "<|im end|>" with a space,
/// say) stands for its own UTF-8 bytes, as Hugging Face's ByteLevel decoder treats it.
std::string token_to_bytes(std::string_view token);

}  // namespace losa::runtime::byte_level
