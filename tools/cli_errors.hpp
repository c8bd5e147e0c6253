#pragma once
// Errors on the command line name the flag that a user typed, never a library identifier
// (DESIGN.md section 5): "error: --block must be <= 64 on the GPU, got 100", not
// "argument 'shape.block_size' ...". Every subcommand reports through run_reporting_errors, which
// maps the library's argument names to the subcommand's flags with one table (cli_errors.cpp).
#include <CLI/CLI.hpp>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>

#include "losa/errors.hpp"

namespace losa::tools {

/// A bad flag found by the command line itself (what() reads "--flag <reason>"), or a
/// subcommand that this build cannot run.
class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void bad_flag(const std::string& flag, const std::string& reason);

/// The reason of an ArgumentError, without its "losa: <function>: argument '<name>' " head.
std::string reason_of(const ArgumentError& e);

/// The flag of `command` that sets the library argument `argument`: "shape.block_size" is
/// "--block" in `losa demo` and "--block-size" in `losa generate`. A flag ("--model") or an
/// environment variable ("LOSA_HOST_MEMORY_LIMIT") stands for itself. Empty when no flag of
/// `command` sets it.
std::string flag_of(const CLI::App& command, const std::string& argument);

/// Runs a subcommand and returns its exit status. An error goes to stderr as "error: ...",
/// naming the flag: status 2 for a bad flag (FlagError, or an ArgumentError), 1 for any other
/// failure.
int run_reporting_errors(const CLI::App& command, const std::function<int()>& body);

/// Opens the output file of `flag` now, before any long computation, so that an unwritable
/// path fails at once (FlagError) instead of after the work.
std::ofstream open_output(const std::string& path, const std::string& flag);
/// Closes an output of open_output; FlagError when anything failed to reach the file (a full
/// disk, say), so that no "wrote" message follows a lost write.
void close_output(std::ofstream& out, const std::string& path, const std::string& flag);

/// Why a subcommand or flag that needs the CUDA backend cannot run in a CPU-only build, and how
/// to build that backend; `what` names it ("losa bench").
std::string gpu_not_built(const std::string& what);

}  // namespace losa::tools
