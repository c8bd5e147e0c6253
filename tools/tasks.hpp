#pragma once
// `losa tasks`: examples of the eval task suite (losa/eval/tasks.hpp), printed as text or written
// as a binary shard for training (train/data.py reads it; the format is in tasks.cpp).
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "losa/eval/tasks.hpp"

namespace losa::tools {

/// --tasks values ("all" or task names) as tasks; FlagError naming `flag` when none or unknown.
std::vector<eval::Task> parse_tasks(const std::vector<std::string>& names, const char* flag);

struct TasksOptions {
  std::vector<std::string> tasks = {"all"};
  int64_t count = 4;
  int64_t min_len = 512, max_len = 4096;  ///< context lengths, drawn log-uniformly
  uint64_t seed = 0;
  int questions = 1;  ///< questions per context (training shards ask several)
  std::string out;  ///< binary shard; empty: print the examples
};

CLI::App* add_tasks_command(CLI::App& app, TasksOptions& options);
int run_tasks(const TasksOptions& options);

}  // namespace losa::tools
