#pragma once
// A .safetensors file held in memory for tests that corrupt it: the JSON header (editable) and
// the data bytes after it.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/fixture.hpp"

namespace losa::test {

struct SafetensorsImage {
  nlohmann::ordered_json header;
  std::string data;

  static SafetensorsImage read(const std::string& path) {
    const std::string bytes = read_file(path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    SafetensorsImage img;
    img.header = nlohmann::ordered_json::parse(bytes.substr(8, n));
    img.data = bytes.substr(8 + n);
    return img;
  }

  std::string bytes() const { return with_header_text(header.dump()); }

  /// The file with `text` as its header (which need not be valid JSON).
  std::string with_header_text(const std::string& text) const {
    std::string out(8, '\0');
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<char>(n & 0xff);
    return out + text + data;
  }

  void write(const std::string& path) const { write_file(path, bytes()); }
};

}  // namespace losa::test
