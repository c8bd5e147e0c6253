#include "tasks.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <iostream>

#include "cli_errors.hpp"
#include "losa/eval/tasks.hpp"
#include "losa/random.hpp"

namespace losa::tools {
namespace {

using eval::Task;

// Shard format (little-endian): "LOSATSK2", u32 vocab_size, u32 count; then per example
// u32 task index, u32 number of parts, each part's u32 length, and the parts' u16 tokens: the
// prompt, its answer, then each further question and its answer (even parts are read, odd ones
// generated).
template <typename T>
void put(std::ofstream& out, T value) {
  out.write(reinterpret_cast<const char*>(&value), sizeof(value));
}

}  // namespace

std::vector<Task> parse_tasks(const std::vector<std::string>& names, const char* flag) {
  std::vector<Task> tasks;
  for (const std::string& name : names) {
    if (name == "all") {
      tasks.insert(tasks.end(), eval::all_tasks().begin(), eval::all_tasks().end());
      continue;
    }
    tasks.push_back(eval::parse_task(name, flag));
  }
  if (tasks.empty()) bad_flag(flag, "names no task");
  return tasks;
}

CLI::App* add_tasks_command(CLI::App& app, TasksOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "tasks", "Print examples of the long-context task suite of `losa eval`, or write them as a binary "
               "training shard (--out) for train/.");
  cmd->add_option("--tasks", o.tasks, "tasks (single_needle multi_key multi_value chain frequent, or all)")
      ->capture_default_str();
  cmd->add_option("--count", o.count, "examples (tasks in turn)")->capture_default_str();
  cmd->add_option("--min-len", o.min_len, "shortest context (tokens)")->capture_default_str();
  cmd->add_option("--max-len", o.max_len, "longest context (tokens)")->capture_default_str();
  cmd->add_option("--seed", o.seed, "seed: example i uses seed * 2^32 + i")->capture_default_str();
  cmd->add_option("--questions", o.questions, "questions per context (training; up to one per fact)")
      ->capture_default_str();
  cmd->add_option("--out", o.out, "write a binary shard here instead of printing");
  return cmd;
}

int run_tasks(const TasksOptions& o) {
  const std::vector<Task> tasks = parse_tasks(o.tasks, "--tasks");
  if (o.count < 1 || o.count > (int64_t{1} << 31)) bad_flag("--count", "must be in 1..2^31, got " + std::to_string(o.count));
  int64_t shortest = std::numeric_limits<int64_t>::max();
  for (Task t : tasks) shortest = std::min(shortest, eval::min_context_len(t));
  if (o.min_len < shortest)
    bad_flag("--min-len", "must be >= " + std::to_string(shortest) + ", got " + std::to_string(o.min_len));
  if (o.max_len < o.min_len || o.max_len > 65535 * 16)
    bad_flag("--max-len", "must be in --min-len..1048560, got " + std::to_string(o.max_len));
  // Example seeds (seed << 32) + i keep the top bit clear: losa eval's seeds set it (eval_seed).
  if (o.seed >= (uint64_t{1} << 31)) bad_flag("--seed", "must be below 2^31, got " + std::to_string(o.seed));
  if (o.questions < 1 || o.questions > 64) bad_flag("--questions", "must be in 1..64, got " + std::to_string(o.questions));
  std::ofstream out;
  if (!o.out.empty()) {
    out = open_output(o.out, "--out");
    out.write("LOSATSK2", 8);
    put<uint32_t>(out, eval::TaskVocab::size);
    put<uint32_t>(out, static_cast<uint32_t>(o.count));
  }
  SplitMix64 lengths(splitmix64_mix(o.seed ^ 0x6c656e67746873ull));
  const double log_min = std::log(static_cast<double>(o.min_len)), log_max = std::log(static_cast<double>(o.max_len));
  for (int64_t i = 0; i < o.count; ++i) {
    const Task task = tasks[static_cast<size_t>(i) % tasks.size()];
    // A task that needs more than --min-len gets its own minimum (never more than --max-len asks
    // for: then --max-len is below it and the example is as short as the task allows).
    const int64_t drawn = std::clamp<int64_t>(std::llround(std::exp(log_min + (log_max - log_min) * lengths.uniform())),
                                              o.min_len, o.max_len);
    const int64_t len = std::max(drawn, eval::min_context_len(task));
    const eval::TaskExample ex = eval::make_example(task, len, (o.seed << 32) + static_cast<uint64_t>(i), o.questions);
    if (o.out.empty()) {
      std::cout << "=== " << eval::task_name(task) << ", " << len << " tokens\n"
                << eval::TaskVocab::render(ex.prompt, 64) << "\n--> " << eval::TaskVocab::render(ex.answer) << "\n";
      for (const eval::QuestionAnswer& qa : ex.more)
        std::cout << eval::TaskVocab::render(qa.question) << "\n--> " << eval::TaskVocab::render(qa.answer) << "\n";
      continue;
    }
    std::vector<const std::vector<int32_t>*> parts = {&ex.prompt, &ex.answer};
    for (const eval::QuestionAnswer& qa : ex.more) parts.insert(parts.end(), {&qa.question, &qa.answer});
    put<uint32_t>(out, static_cast<uint32_t>(task));
    put<uint32_t>(out, static_cast<uint32_t>(parts.size()));
    for (const auto* part : parts) put<uint32_t>(out, static_cast<uint32_t>(part->size()));
    for (const auto* part : parts)
      for (int32_t t : *part) put<uint16_t>(out, static_cast<uint16_t>(t));
  }
  if (!o.out.empty()) {
    close_output(out, o.out, "--out");
    std::cerr << "wrote " << o.count << " examples to " << o.out << "\n";
  }
  return 0;
}

}  // namespace losa::tools
