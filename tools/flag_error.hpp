#pragma once
// A command-line flag that cannot be honoured. `losa generate` prints "error: <flag> <reason>"
// and exits 2, so that every message starts with the flag the user typed.
#include <stdexcept>
#include <string>

#include "losa/errors.hpp"

namespace losa::tools {

struct FlagError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void bad_flag(const std::string& flag, const std::string& reason) {
  throw FlagError(flag + " " + reason);
}

/// The reason of a library's ArgumentError ("losa: f: argument 'x' must be ..." -> "must be
/// ..."), to repeat it under the flag's name.
inline std::string reason_of(const ArgumentError& e) {
  const std::string what = e.what(), marker = "argument '" + e.argument() + "' ";
  const std::size_t at = what.find(marker);
  return at == std::string::npos ? what : what.substr(at + marker.size());
}

}  // namespace losa::tools
