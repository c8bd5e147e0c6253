#pragma once
// Typed reads of JSON fields that report a bad field as a CheckpointError naming the file and the
// field (nlohmann's own messages name neither). Internal to the runtime.
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "losa/errors.hpp"

namespace losa::runtime::detail {

using nlohmann::json;

/// Parses `text`; malformed JSON becomes a CheckpointError naming `file`.
inline json parse_json(const std::string& text, const std::string& file, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw CheckpointError(file, "", "malformed JSON in " + what + ": " + e.what());
  }
}

class JsonFields {
 public:
  JsonFields(const json& object, std::string file, std::string context = "")
      : object_(object), file_(std::move(file)), context_(std::move(context)) {
    if (!object_.is_object()) fail("", "must be a JSON object");
  }

  /// The object at `key`, with errors naming "key.field".
  JsonFields nested(const char* key) const {
    return JsonFields(at(key), file_, context_.empty() ? key : context_ + "." + key);
  }

  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  const json& at(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    return object_.at(key);
  }

  /// An integer in [lo, hi]; a JSON float with an integral value is accepted (1e6 for rope_theta).
  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    const json& v = at(key);
    int64_t x = 0;
    if (v.is_number_integer() || v.is_number_unsigned()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
        fail(key, "is too large");
      x = v.get<int64_t>();
    } else if (v.is_number_float() && std::isfinite(v.get<double>()) &&
               std::nearbyint(v.get<double>()) == v.get<double>() &&
               std::fabs(v.get<double>()) < 9e18) {
      x = static_cast<int64_t>(v.get<double>());
    } else {
      fail(key, "must be an integer, got " + v.dump());
    }
    if (x < lo || x > hi)
      fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                    std::to_string(x));
    return x;
  }
  int64_t integer_or(const char* key, int64_t fallback, int64_t lo, int64_t hi) const {
    return has(key) ? integer(key, lo, hi) : fallback;
  }

  double number(const char* key) const {
    const json& v = at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      fail(key, "must be a finite number, got " + v.dump());
    return v.get<double>();
  }
  double number_or(const char* key, double fallback) const {
    return has(key) ? number(key) : fallback;
  }

  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_boolean()) fail(key, "must be true or false, got " + v.dump());
    return v.get<bool>();
  }

  std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_string()) fail(key, "must be a string, got " + v.dump());
    return v.get<std::string>();
  }

  [[noreturn]] void fail(const std::string& key, const std::string& reason) const {
    std::string field = context_;
    if (!key.empty()) field += (field.empty() ? "" : ".") + key;
    throw CheckpointError(file_, "", (field.empty() ? "" : "field '" + field + "' ") + reason);
  }

 private:
  const json& object_;
  std::string file_, context_;
};

}  // namespace losa::runtime::detail
