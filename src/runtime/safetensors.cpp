// Memory-mapping and validating a .safetensors file.
#include "safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_fields.hpp"
#include "losa/errors.hpp"

namespace losa::runtime::detail {
namespace {

// The safetensors format caps its header at 100 MB; a larger length is corruption.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

bool parse_dtype_name(const std::string& name, DType* out) {
  if (name == "BF16") *out = DType::bf16;
  else if (name == "F16") *out = DType::f16;
  else if (name == "F32") *out = DType::f32;
  else return false;
  return true;
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; --i) x = (x << 8) | p[i];
  return x;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw CheckpointError(path, "", std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw CheckpointError(path, "", "is not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw CheckpointError(path, "", "truncated: " + std::to_string(size_) +
                                        " bytes, fewer than the 8-byte header length");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw CheckpointError(path, "", std::string("cannot be memory-mapped: ") + std::strerror(errno));
  }
  try {
    parse_header();
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

void SafetensorsFile::parse_header() {
  const auto* base = static_cast<const unsigned char*>(map_);
  const uint64_t header_len = read_u64_le(base);
  if (header_len > size_ - 8)
    throw CheckpointError(path_, "", "header length " + std::to_string(header_len) +
                                         " runs past the end of the file (" +
                                         std::to_string(size_) + " bytes): truncated or corrupt");
  if (header_len > kMaxHeaderBytes)
    throw CheckpointError(path_, "", "header length " + std::to_string(header_len) +
                                         " exceeds the format's 100 MB limit: corrupt");
  const std::string text(reinterpret_cast<const char*>(base + 8), header_len);
  const json header = parse_json(text, path_, "the safetensors header");
  if (!header.is_object()) throw CheckpointError(path_, "", "the header is not a JSON object");
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size_ - data_start;

  struct Span {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const json& e = it.value();
    auto fail = [&](const std::string& reason) { throw CheckpointError(path_, name, reason); };
    if (!e.is_object()) fail("header entry is not a JSON object");
    SafetensorsEntry entry;
    if (!e.contains("dtype") || !e["dtype"].is_string()) fail("has no dtype string");
    const std::string dtype = e["dtype"].get<std::string>();
    if (!parse_dtype_name(dtype, &entry.dtype))
      fail("dtype " + dtype + " is not supported (BF16, F16, F32)");
    if (!e.contains("shape") || !e["shape"].is_array()) fail("has no shape list");
    uint64_t numel = 1;
    for (const json& d : e["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        fail("shape " + e["shape"].dump() + " holds a value that is not a size");
      const uint64_t n = d.get<uint64_t>();
      if (n > (1ull << 40) || (n != 0 && numel > (1ull << 40) / n))
        fail("shape " + e["shape"].dump() + " is absurdly large");
      numel *= n;
      entry.shape.push_back(static_cast<int64_t>(n));
    }
    const json& off = e.contains("data_offsets") ? e["data_offsets"] : json();
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      fail("data_offsets must be two non-negative integers");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end) fail("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + ") are reversed");
    if (end > data_size)
      fail("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           ") run past the end of the data (" + std::to_string(data_size) +
           " bytes): the file is truncated or its header is corrupt");
    entry.bytes = end - begin;
    if (entry.bytes != numel * dtype_bytes(entry.dtype))
      fail("holds " + std::to_string(entry.bytes) + " bytes but shape " + e["shape"].dump() +
           " of " + dtype + " needs " + std::to_string(numel * dtype_bytes(entry.dtype)));
    entry.data = base + data_start + begin;
    auto inserted = tensors_.emplace(name, std::move(entry));
    spans.push_back({begin, end, &inserted.first->first});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Compare each tensor with the furthest-reaching one before it (empty tensors overlap nothing).
  const Span* reach = nullptr;
  for (const Span& s : spans) {
    if (s.end == s.begin) continue;
    if (reach && s.begin < reach->end)
      throw CheckpointError(path_, *s.name, "data overlaps that of tensor '" + *reach->name + "'");
    if (!reach || s.end > reach->end) reach = &s;
  }
}

}  // namespace losa::runtime::detail
