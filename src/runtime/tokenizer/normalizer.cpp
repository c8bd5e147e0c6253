#include "normalizer.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "losa/errors.hpp"

namespace losa::runtime {

std::string normalize(std::string_view text, Normalization form) {
  if (form == Normalization::kNone) return std::string(text);
  bool ascii = true;
  for (char c : text) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) return std::string(text);
  // UTF8PROC_STABLE: normalization stable across Unicode versions; COMPOSE: canonical
  // decomposition then composition, i.e. NFC (utf8proc_NFC uses the same flags).
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &result,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (length < 0) {
    throw BackendError(std::string("NFC normalization failed: ") + utf8proc_errmsg(length));
  }
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(result, &std::free);
  return std::string(reinterpret_cast<const char*>(result), static_cast<std::size_t>(length));
}

}  // namespace losa::runtime
