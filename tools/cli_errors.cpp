#include "cli_errors.hpp"

#include <cctype>
#include <cstdio>
#include <map>
#include <vector>

namespace losa::tools {
namespace {

// The library's argument names (ArgumentError::argument, without a "shape." or "mode." head) ->
// the flags that set them, in any subcommand. One table for every subcommand: flag_of keeps the
// first flag that the subcommand at hand has, so "block_size" is --block in `losa demo` and
// --block-size in `losa generate`.
const std::map<std::string, std::vector<std::string>>& flags_by_argument() {
  static const std::map<std::string, std::vector<std::string>> table = {
      {"batch", {"--batch"}},
      {"block_size", {"--block", "--block-size"}},
      {"budget_tokens", {"--budget"}},
      {"budgets", {"--budgets"}},
      {"capacity_tokens", {"--max-new-tokens"}},  // the KV cache is sized from it
      {"changing_tokens", {"--changing"}},
      {"config", {"--random-weights"}},
      {"delta_min", {"--delta-min"}},
      {"delta_mins", {"--delta-min"}},
      {"drift", {"--drift"}},
      {"dtype", {"--dtype", "--kv-dtype"}},
      {"head_dim", {"--head-dim"}},
      {"k_active", {"--k-active"}},
      {"kv_dtype", {"--kv-dtype", "--dtype"}},
      {"lengths", {"--lengths"}},
      {"losa_complement", {"--complement"}},
      {"mask_token_id", {"--mask-id"}},
      {"max_new_tokens", {"--max-new-tokens"}},
      {"mode", {"--mode", "--modes"}},
      {"num_kv_heads", {"--kv-heads"}},
      {"num_q_heads", {"--q-heads"}},
      {"num_threads", {"--threads"}},
      {"page_size", {"--page-size"}},
      {"prefill_chunk", {"--prefill-chunk"}},
      {"prefix_len", {"--prefix-len"}},
      {"prompts", {"--tokens"}},
      {"samples", {"--samples"}},
      {"sparsed_select", {"--select"}},
      {"sparsed_skip", {"--skip"}},
      {"steps", {"--steps"}},
      {"steps_per_block", {"--steps"}},
      {"stop_ids", {"--stop-ids"}},
      {"stop_strings", {"--stop"}},
      {"tau", {"--tau"}},
      {"temperature", {"--temperature"}},
      {"threshold", {"--threshold"}},
      {"top_k", {"--top-k"}},
      {"top_p", {"--top-p"}},
  };
  return table;
}

}  // namespace

[[noreturn]] void bad_flag(const std::string& flag, const std::string& reason) {
  throw FlagError(flag + " " + reason);
}

std::string reason_of(const ArgumentError& e) {
  const std::string what = e.what(), marker = "argument '" + e.argument() + "' ";
  const size_t at = what.find(marker);
  return at == std::string::npos ? what : what.substr(at + marker.size());
}

std::string flag_of(const CLI::App& command, const std::string& argument) {
  // What a user set by that very name: a flag, or an environment variable.
  if (argument.rfind("--", 0) == 0 || argument.rfind("LOSA_", 0) == 0) return argument;
  // "shape.block_size", "mode.budget_tokens": the field names the flag, not the struct.
  const size_t dot = argument.rfind('.');
  const std::string field = dot == std::string::npos ? argument : argument.substr(dot + 1);
  const auto it = flags_by_argument().find(field);
  if (it == flags_by_argument().end()) return {};
  for (const std::string& flag : it->second)
    if (command.get_option_no_throw(flag) != nullptr) return flag;
  return {};
}

namespace {

// The library's reasons refer to other arguments as "name=value" ("must be in [0,
// block_size=16]"): those that a flag of `command` sets are named by the flag instead.
std::string with_flags(const CLI::App& command, std::string reason) {
  for (const auto& entry : flags_by_argument()) {
    const std::string name = entry.first + "=";
    const std::string flag = flag_of(command, entry.first);
    if (flag.empty()) continue;
    for (size_t at = reason.find(name); at != std::string::npos; at = reason.find(name, at)) {
      const bool whole_word = at == 0 || !(std::isalnum(static_cast<unsigned char>(reason[at - 1])) ||
                                           reason[at - 1] == '_' || reason[at - 1] == '.');
      if (whole_word) {
        reason.replace(at, name.size(), flag + "=");
        at += flag.size() + 1;
      } else {
        at += name.size();
      }
    }
  }
  return reason;
}

}  // namespace

int run_reporting_errors(const CLI::App& command, const std::function<int()>& body) {
  try {
    return body();
  } catch (const FlagError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const ArgumentError& e) {
    const std::string flag = flag_of(command, e.argument());
    // No flag sets it (a value from a model's config.json, say): the library's message names it.
    std::fprintf(stderr, "error: %s\n",
                 flag.empty() ? e.what() : (flag + " " + with_flags(command, reason_of(e))).c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

std::ofstream open_output(const std::string& path, const std::string& flag) {
  std::ofstream out(path);
  if (!out) bad_flag(flag, "cannot write '" + path + "'");
  return out;
}

void close_output(std::ofstream& out, const std::string& path, const std::string& flag) {
  out.close();  // flushes: a write error shows only now
  if (!out) bad_flag(flag, "cannot write '" + path + "' (the write failed)");
}

std::string gpu_not_built(const std::string& what) {
  return what + " needs the GPU (CUDA) backend, which was not built: this build is CPU only. "
                "Install the CUDA toolkit (12.x or 13.x, nvcc on the PATH) and configure with "
                "-DLOSA_CUDA=AUTO (the default) or ON, then rebuild; see README.md, Build options";
}

}  // namespace losa::tools
