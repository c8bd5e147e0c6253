#include "eval.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "backend_choice.hpp"
#include "cli_errors.hpp"
#include "losa/eval/evaluate.hpp"
#include "losa/runtime/strategies.hpp"
#include "plot.hpp"
#include "tasks.hpp"

namespace losa::tools {

namespace {

using eval::EvalRecord;

void print_progress(const eval::EvalProgress& p) {
  const int width = 30;
  const double share = p.total ? static_cast<double>(p.done) / static_cast<double>(p.total) : 1.0;
  const int filled = static_cast<int>(share * width);
  const double eta = p.done ? p.seconds / static_cast<double>(p.done) * static_cast<double>(p.total - p.done) : 0.0;
  std::fprintf(stderr, "\r[%s%s] %lld/%lld prompts, %.0fs, ETA %.0fs: %-48s", std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), static_cast<long long>(p.done),
               static_cast<long long>(p.total), p.seconds, eta, p.current.c_str());
  if (p.done == p.total) std::fprintf(stderr, "\n");
}

std::string variant_label(const EvalRecord& r) {
  std::string label = r.mode;
  if (!r.options.empty()) label += " " + r.options;
  return label;
}

/// Per length and variant: accuracy per task and the means, as one table a length.
void print_tables(const std::vector<EvalRecord>& records, const std::vector<std::string>& tasks) {
  std::map<int64_t, std::vector<const EvalRecord*>> by_length;
  for (const EvalRecord& r : records) by_length[r.context_len].push_back(&r);
  for (const auto& [len, rows] : by_length) {
    std::printf("\n== context %lld tokens (block %d, %d steps): accuracy %% per task\n", static_cast<long long>(len),
                rows.front()->block_size, rows.front()->steps);
    std::printf("%-34s %6s", "mode", "budget");
    for (const std::string& t : tasks) std::printf(" %13.13s", t.c_str());
    std::printf(" %7s %8s %7s %10s\n", "mean", "density", "active", "us/block");
    for (size_t i = 0; i < rows.size(); i += tasks.size()) {
      const EvalRecord& head = *rows[i];
      std::printf("%-34s %6s", variant_label(head).c_str(),
                  head.budget_tokens ? std::to_string(head.budget_tokens).c_str() : "-");
      double acc = 0, density = 0, active = 0, us = 0;
      for (size_t t = 0; t < tasks.size(); ++t) {
        const EvalRecord& r = *rows[i + t];
        std::printf(" %13.1f", 100.0 * r.accuracy);
        acc += r.accuracy;
        density += r.density;
        active += r.active_tokens;
        us += r.time_per_block_us;
      }
      const double n = static_cast<double>(tasks.size());
      std::printf(" %7.1f %7.1f%% %7.2f %10.1f\n", 100.0 * acc / n, 100.0 * density / n, active / n, us / n);
    }
  }
}

/// One panel per length: mean accuracy over the tasks against the budget, a line per mode and
/// option set; dense is flat (it has no budget).
std::vector<PlotPanel> accuracy_panels(const std::vector<EvalRecord>& records, const std::vector<int>& budgets) {
  std::map<int64_t, std::map<std::string, std::map<int, std::pair<double, int>>>> acc;  // len, label, budget
  for (const EvalRecord& r : records) {
    // SparseD's select share follows the budget: one line for all of them.
    const std::string label = r.mode == "sparsed" ? r.mode + " " + r.options.substr(r.options.find("skip=")) : variant_label(r);
    auto& cell = acc[r.context_len][label][r.budget_tokens];
    cell.first += r.accuracy;
    cell.second += 1;
  }
  std::vector<PlotPanel> panels;
  for (const auto& [len, labels] : acc) {
    PlotPanel p;
    p.title = "context " + std::to_string(len) + " tokens";
    p.x_label = "token budget";
    p.y_label = "accuracy";
    p.log2_x = true;
    p.y_min = 0.0;
    p.y_max = 1.0;
    for (const auto& [label, cells] : labels) {  // label: the series (options fixed across budgets)
      PlotSeries s;
      s.label = label;
      if (cells.size() == 1 && cells.begin()->first == 0) {  // dense: a flat line over the budgets
        for (int b : budgets) {
          s.x.push_back(b);
          s.y.push_back(cells.begin()->second.first / cells.begin()->second.second);
        }
      } else {
        for (const auto& [budget, sum] : cells) {
          s.x.push_back(budget);
          s.y.push_back(sum.first / sum.second);
        }
      }
      p.series.push_back(s);
    }
    panels.push_back(p);
  }
  return panels;
}

nlohmann::json records_json(const std::vector<EvalRecord>& records) {
  nlohmann::json out = nlohmann::json::array();
  for (const EvalRecord& r : records)
    out.push_back({{"task", r.task},
                   {"mode", r.mode},
                   {"options", r.options},
                   {"budget_tokens", r.budget_tokens},
                   {"context_len", r.context_len},
                   {"accuracy", r.accuracy},
                   {"samples", r.samples},
                   {"density", r.density},
                   {"active_tokens", r.active_tokens},
                   {"time_per_block_us", r.time_per_block_us},
                   {"layer_density", r.layer_density},
                   {"layer_active_tokens", r.layer_active_tokens},
                   {"block_size", r.block_size},
                   {"steps", r.steps},
                   {"generated", r.generated}});
  return out;
}

/// The plot of a run's results, or of an earlier run's (--from-json), where --png asks for it.
void plot(const std::vector<EvalRecord>& records, const std::vector<int>& budgets, const std::string& png_path) {
  if (png_path.empty()) return;
  write_line_chart_png(accuracy_panels(records, budgets), png_path);
  std::fprintf(stderr, "wrote %s\n", png_path.c_str());
}

/// The records of an earlier run's --json, checked field by field: a bad file is named with the
/// record and field, never read as numbers it does not hold.
std::vector<EvalRecord> records_from_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) bad_flag("--from-json", "cannot read '" + path + "'");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    bad_flag("--from-json", "'" + path + "' is not JSON: " + e.what());
  }
  if (!doc.is_object() || !doc.contains("records") || !doc["records"].is_array() || doc["records"].empty())
    bad_flag("--from-json", "'" + path + "' has no records (a `losa eval --json` file holds a non-empty \"records\" array)");
  std::vector<EvalRecord> records;
  for (size_t i = 0; i < doc["records"].size(); ++i) {
    const nlohmann::json& j = doc["records"][i];
    auto field = [&](const char* name, auto& out) {
      try {
        out = j.at(name).get<std::decay_t<decltype(out)>>();
      } catch (const nlohmann::json::exception&) {
        bad_flag("--from-json", "record " + std::to_string(i) + " of '" + path + "': field '" + name +
                                    "' is missing or of the wrong type");
      }
    };
    EvalRecord r;
    field("task", r.task);
    field("mode", r.mode);
    field("options", r.options);
    field("budget_tokens", r.budget_tokens);
    field("context_len", r.context_len);
    field("accuracy", r.accuracy);
    field("density", r.density);
    field("active_tokens", r.active_tokens);
    field("time_per_block_us", r.time_per_block_us);
    field("block_size", r.block_size);
    field("steps", r.steps);
    if (!(r.accuracy >= 0.0 && r.accuracy <= 1.0) || !(r.density >= 0.0 && r.density <= 1.0) || r.context_len <= 0)
      bad_flag("--from-json", "record " + std::to_string(i) + " of '" + path +
                                  "': accuracy and density must be in 0..1 and context_len > 0");
    records.push_back(std::move(r));
  }
  return records;
}

/// `--from-json`: the tables and the plot of an earlier run (one made on a GPU machine whose PNG
/// did not come back, say), with the tasks in the file's order.
int replot(const EvalFlags& f) {
  const std::vector<EvalRecord> records = records_from_json(f.from_json);
  std::vector<std::string> tasks;
  std::vector<int> budgets;
  for (const EvalRecord& r : records) {
    if (std::find(tasks.begin(), tasks.end(), r.task) == tasks.end()) tasks.push_back(r.task);
    if (r.budget_tokens > 0 && std::find(budgets.begin(), budgets.end(), r.budget_tokens) == budgets.end())
      budgets.push_back(r.budget_tokens);
  }
  std::sort(budgets.begin(), budgets.end());
  if (budgets.empty()) budgets = f.budgets;
  std::map<int64_t, size_t> per_length;
  for (const EvalRecord& r : records) ++per_length[r.context_len];
  for (const auto& [len, n] : per_length)
    if (n % tasks.size() != 0)
      bad_flag("--from-json", "'" + f.from_json + "' holds " + std::to_string(n) + " records at length " +
                                  std::to_string(len) + ", not a whole number of variants of its " +
                                  std::to_string(tasks.size()) + " tasks");
  print_tables(records, tasks);
  plot(records, budgets, f.png_path);
  return 0;
}

}  // namespace

CLI::App* add_eval_command(CLI::App& app, EvalFlags& f) {
  CLI::App* c = app.add_subcommand(
      "eval", "Decode the long-context task suite (losa tasks) with a model in every attention mode and "
              "option set; print accuracy, density, active tokens and time per block; write JSON and a PNG.");
  c->add_option("--model", f.model_dir, "model folder (config.json, safetensors) trained on the suite (required unless --from-json)");
  c->add_option("--device", f.device, "cpu or cuda (default: cuda where present)");
  c->add_option("--threads", f.threads, "CPU threads (0: all cores)")->capture_default_str();
  c->add_option("--tasks", f.tasks, "tasks, or all")->capture_default_str();
  c->add_option("--lengths", f.lengths, "context lengths (tokens)")->capture_default_str();
  c->add_option("--samples", f.samples, "examples per task and length")->capture_default_str();
  c->add_option("--seed", f.seed, "example seed")->capture_default_str();
  c->add_option("--modes", f.modes, "dense quest losa sparsed")->capture_default_str();
  c->add_option("--budgets", f.budgets, "token budgets of quest, losa, sparsed")->capture_default_str();
  // A LoSA rule's flag with no value runs none of its variants.
  c->add_option("--k-active", f.k_actives, "LoSA top-k active-token variants [0] (none: the flag alone)")
      ->expected(0, CLI::detail::expected_max_vector_size);
  c->add_option("--tau", f.taus, "LoSA change-share variants [0.5] (none: the flag alone)")
      ->expected(0, CLI::detail::expected_max_vector_size);
  c->parse_complete_callback([c, &f] {  // a flag given without values keeps no default variant
    auto bare = [c, &f](const char* name) {
      if (!c->count(name)) return false;
      bool empty = false, valued = false;  // CLI11 records a value-less use as an empty result
      for (const std::string& r : c->get_option(name)->results()) (r.empty() ? empty : valued) = true;
      if (empty && valued) f.mixed_bare_flag = name;  // reported by run_eval (a throw here would escape the parse)
      return empty;
    };
    if (bare("--k-active")) f.k_actives.clear();
    if (bare("--tau")) f.taus.clear();
  });
  c->add_flag("--complement", f.complement,
              "also each LoSA variant with losa_complement (active rows keep step 0's state of the pages they skip)");
  c->add_option("--delta-min", f.delta_mins,
                "LoSA per-row change-threshold variants (every token whose normalised change reaches it is active)");
  c->add_option("--skip", f.skip, "SparseD full-step fraction")->capture_default_str();
  c->add_option("--block-size", f.block_size, "block size B")->capture_default_str();
  c->add_option("--steps", f.steps, "denoising steps per block (0: B)")->capture_default_str();
  c->add_option("--strategy", f.strategy, "sequential, low_confidence_static, low_confidence_dynamic")
      ->capture_default_str();
  c->add_option("--threshold", f.threshold, "low_confidence_dynamic's threshold")->capture_default_str();
  c->add_option("--batch", f.batch, "prompts decoded together")->capture_default_str();
  c->add_option("--json", f.json_path, "write the records here");
  c->add_option("--png", f.png_path, "write the accuracy plot here");
  c->add_flag("--progress", f.progress, "show the progress bar even when stderr is not a terminal");
  c->add_option("--from-json", f.from_json,
                "print the tables of an earlier run's --json file and, with --png, plot it; decodes nothing");
  return c;
}

int run_eval(const EvalFlags& f, const std::string& command_line) {
  if (!f.from_json.empty()) {
    if (!f.model_dir.empty()) bad_flag("--model", "does not apply with --from-json (the file holds the results)");
    if (!f.json_path.empty()) bad_flag("--json", "does not apply with --from-json");
    if (!f.png_path.empty()) open_output(f.png_path, "--png").close();
    return replot(f);
  }
  if (!f.mixed_bare_flag.empty())
    bad_flag(f.mixed_bare_flag, "is given both alone (no variants) and with values; give one");
  if (f.model_dir.empty()) bad_flag("--model", "is required (a model folder), or --from-json FILE");
  const std::string device = f.device.empty() ? default_device() : f.device;
  check_device_flag(device);
  const std::vector<eval::Task> tasks = parse_tasks(f.tasks, "--tasks");
  eval::VariantGrid grid;
  grid.modes.clear();
  for (const std::string& m : f.modes) grid.modes.push_back(parse_mode(m));
  grid.budgets = f.budgets;
  grid.k_actives = f.k_actives;
  grid.taus = f.taus;
  grid.delta_mins = f.delta_mins;
  grid.with_complement = f.complement;
  grid.sparsed_skip = f.skip;
  if (grid.modes.empty()) bad_flag("--modes", "names no mode");
  for (int k : f.k_actives)
    if (k < 0 || k > f.block_size)
      bad_flag("--k-active", "must be in 0..--block-size, got " + std::to_string(k));
  for (double tau : f.taus)
    if (!(tau > 0.0 && tau <= 1.0)) bad_flag("--tau", "must be in (0, 1], got " + std::to_string(tau));
  if (std::count(grid.modes.begin(), grid.modes.end(), Mode::losa) && f.k_actives.empty() && f.taus.empty() &&
      f.delta_mins.empty())
    bad_flag("--modes", "has losa but --k-active, --tau and --delta-min give it no variant");
  for (int b : f.budgets)
    if (b <= 0) bad_flag("--budgets", "must be > 0, got " + std::to_string(b));
  int64_t shortest = 0;  // every task runs at every length
  for (eval::Task t : tasks) shortest = std::max(shortest, eval::min_context_len(t));
  for (int64_t len : f.lengths)
    if (len < shortest || len > (int64_t{1} << 20))
      bad_flag("--lengths", "must be in " + std::to_string(shortest) + "..1048576, got " + std::to_string(len));
  if (f.block_size < 1 || f.block_size > 64) bad_flag("--block-size", "must be in 1..64, got " + std::to_string(f.block_size));
  if (f.steps < 0 || f.steps > f.block_size)
    bad_flag("--steps", "must be in 0..--block-size, got " + std::to_string(f.steps));
  for (int64_t len : f.lengths) make_variants(grid, len);  // the grid's own errors before anything is loaded

  eval::EvalOptions options;
  options.tasks = tasks;
  options.lengths = f.lengths;
  options.samples = f.samples;
  options.seed = f.seed;
  options.batch = f.batch;
  options.decode.block_size = f.block_size;
  options.decode.steps = f.steps ? f.steps : f.block_size;
  options.decode.strategy = runtime::parse_strategy(f.strategy);
  options.decode.threshold = f.threshold;

  std::ofstream json_out;
  if (!f.json_path.empty()) json_out = open_output(f.json_path, "--json");
  if (!f.png_path.empty()) open_output(f.png_path, "--png").close();  // unwritable: fail before the work

  const runtime::Weights weights = runtime::load_checkpoint(f.model_dir);
  if (weights.config.vocab_size < eval::TaskVocab::size)
    bad_flag("--model", "has vocab_size " + std::to_string(weights.config.vocab_size) + "; the task suite needs " +
                            std::to_string(eval::TaskVocab::size));
  std::unique_ptr<runtime::ModelBackend> backend = make_backend(device, weights, f.threads);

  const bool show = f.progress || ::isatty(2);
  const std::vector<EvalRecord> records = eval::evaluate(
      *backend, options, [&](int64_t len) { return eval::make_variants(grid, len); },
      show ? std::function<void(const eval::EvalProgress&)>(print_progress) : nullptr);

  std::vector<std::string> task_names;
  for (eval::Task t : tasks) task_names.push_back(eval::task_name(t));
  print_tables(records, task_names);
  if (json_out.is_open()) {
    const nlohmann::json doc = {{"command", command_line},
                                {"model", f.model_dir},
                                {"device", device},
                                {"block_size", options.decode.block_size},
                                {"steps", options.decode.steps},
                                {"strategy", f.strategy},
                                {"threshold", f.threshold},
                                {"samples_per_task", f.samples},
                                {"seed", f.seed},
                                {"records", records_json(records)}};
    json_out << doc.dump(1) << "\n";
    close_output(json_out, f.json_path, "--json");
    std::fprintf(stderr, "wrote %s\n", f.json_path.c_str());
  }
  plot(records, f.budgets, f.png_path);
  return 0;
}

}  // namespace losa::tools
