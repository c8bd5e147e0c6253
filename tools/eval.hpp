#pragma once
// `losa eval`: the long-context task suite through the model runtime in every attention mode and
// option set; prints a table and writes JSON (one record per task x mode x options x budget x
// length) and a PNG of accuracy against budget.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace losa::tools {

struct EvalFlags {
  std::string model_dir;
  std::string device;  ///< empty: cuda where it can run, else cpu
  int threads = 0;
  std::vector<std::string> tasks = {"all"};
  std::vector<int64_t> lengths = {4096};
  int samples = 10;
  uint64_t seed = 1;
  std::vector<std::string> modes = {"dense", "quest", "losa", "sparsed"};
  std::vector<int> budgets = {128, 256, 512, 1024};
  std::vector<int> k_actives = {0};
  std::vector<double> taus = {0.5};
  std::vector<double> delta_mins;
  bool complement = false;
  std::string mixed_bare_flag;  ///< set while parsing: a rule flag given both bare and with values
  double skip = 0.2;
  int block_size = 16;
  int steps = 0;  ///< 0: block_size (one token or more per step)
  std::string strategy = "low_confidence_dynamic";
  double threshold = 0.9;
  int batch = 16;
  std::string json_path, png_path;
  std::string from_json;  ///< an earlier run's --json: print its tables and plot it, decode nothing
  bool progress = false;
};

CLI::App* add_eval_command(CLI::App& app, EvalFlags& flags);
int run_eval(const EvalFlags& flags, const std::string& command_line);

}  // namespace losa::tools
