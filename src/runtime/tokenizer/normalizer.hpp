#pragma once
// Unicode normalization of the text between added tokens (Qwen2: NFC), by utf8proc.
#include <string>
#include <string_view>

namespace losa::runtime {

/// The normalizations a tokenizer file may ask for.
enum class Normalization { kNone, kNFC };

/// `text` (valid UTF-8) in the given normal form. Pure ASCII is returned as is (already NFC).
std::string normalize(std::string_view text, Normalization form);

}  // namespace losa::runtime
