#pragma once
// Errors raised by every public entry point. A bad argument is always reported by name,
// never by a crash or by silently wrong numbers.
#include <sstream>
#include <stdexcept>
#include <string>

namespace losa {

/// Thrown when a public entry point gets an argument it cannot honour.
/// what() reads: "losa: <function>: argument '<name>' <reason>".
class ArgumentError : public std::invalid_argument {
 public:
  ArgumentError(const std::string& function, const std::string& argument, const std::string& reason)
      : std::invalid_argument("losa: " + function + ": argument '" + argument + "' " + reason),
        argument_(argument) {}
  const std::string& argument() const { return argument_; }

 private:
  std::string argument_;
};

/// Thrown when a backend fails at run time (a CUDA call returned an error, say).
class BackendError : public std::runtime_error {
 public:
  explicit BackendError(const std::string& what) : std::runtime_error("losa: " + what) {}
};

/// Thrown when a file that an entry point reads is missing or malformed (a model folder's
/// tokenizer files, say). what() reads: "losa: <path>: <what is wrong, and where in the file>".
class FileError : public std::runtime_error {
 public:
  FileError(const std::string& path, const std::string& reason)
      : std::runtime_error("losa: " + path + ": " + reason), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// A model folder that cannot be used: a missing, truncated or malformed file, or a tensor that
/// is missing, unexpected, or of the wrong shape or dtype.
/// what() reads: "losa: <file>: tensor '<tensor>': <reason>" (without the tensor part when the
/// problem is not about one tensor).
class CheckpointError : public FileError {
 public:
  CheckpointError(const std::string& file, const std::string& tensor, const std::string& reason)
      : FileError(file, (tensor.empty() ? std::string() : "tensor '" + tensor + "': ") + reason), tensor_(tensor) {}
  const std::string& file() const { return path(); }
  const std::string& tensor() const { return tensor_; }

 private:
  std::string tensor_;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace losa

/// Validates a public argument: LOSA_CHECK_ARG(budget > 0, "budget", "must be > 0, got ", budget).
#define LOSA_CHECK_ARG(cond, argument, ...)                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      throw ::losa::ArgumentError(__func__, argument, ::losa::detail::concat(__VA_ARGS__)); \
  } while (0)
