#include "losa/eval/tasks.hpp"

#include <algorithm>
#include <stdexcept>

#include "losa/errors.hpp"
#include "losa/random.hpp"

namespace losa::eval {
namespace {

// Structure words.
constexpr int32_t kPeriod = 2, kKey = 3, kLink = 5, kItem = 7, kQuestion = 8, kFind = 9, kValues = 10,
                  kChain = 11, kTop = 12;
constexpr int32_t kNameWords = TaskVocab::first_filler - TaskVocab::first_content;
constexpr int32_t kFillerWords = TaskVocab::size - TaskVocab::first_filler;
constexpr int kSuccessors = 6;                      // bigram chain out-degree
constexpr uint64_t kGrammarSeed = 0x6c6f73612d6c6eull;  // fixed: every example shares the grammar
constexpr int64_t kMinFiller = 32;

const std::vector<Task> kTasks = {Task::single_needle, Task::multi_key, Task::multi_value, Task::chain,
                                  Task::frequent};

int32_t successor(int32_t word, int j) {
  return TaskVocab::first_filler +
         static_cast<int32_t>(splitmix64_mix(kGrammarSeed ^ splitmix64_mix(static_cast<uint64_t>(word) * 8 + j)) %
                              kFillerWords);
}

int32_t random_word(SplitMix64& rng) {
  return TaskVocab::first_filler + static_cast<int32_t>(rng.below(kFillerWords));
}

/// `count` distinct name words (keys, values, chain nodes, items: never in the filler).
std::vector<int32_t> distinct_names(SplitMix64& rng, int count) {
  std::vector<int32_t> words;
  while (static_cast<int>(words.size()) < count) {
    const int32_t w = TaskVocab::first_content + static_cast<int32_t>(rng.below(kNameWords));
    if (std::find(words.begin(), words.end(), w) == words.end()) words.push_back(w);
  }
  return words;
}

/// Exactly `length` tokens of sentences (6..14 words and a period) from the bigram chain; a
/// quarter of the sentences repeat an earlier one, as text does, so that copying from context
/// pays off everywhere in a training sequence and not only in the answers.
std::vector<int32_t> filler(SplitMix64& rng, int64_t length) {
  std::vector<int32_t> out;
  std::vector<size_t> starts;
  out.reserve(static_cast<size_t>(length) + 16);
  while (static_cast<int64_t>(out.size()) < length) {
    const size_t start = out.size();
    if (starts.size() >= 3 && rng.below(4) == 0) {
      const size_t pick = rng.below(starts.size());
      const size_t from = starts[pick], to = pick + 1 < starts.size() ? starts[pick + 1] : start;
      for (size_t i = from; i < to; ++i) out.push_back(out[i]);
    } else {
      int32_t w = random_word(rng);
      const int64_t words = rng.between(6, 14);
      for (int64_t i = 0; i < words; ++i) {
        out.push_back(w);
        w = successor(w, static_cast<int>(rng.below(kSuccessors)));
      }
      out.push_back(kPeriod);
    }
    starts.push_back(start);
  }
  out.resize(static_cast<size_t>(length));
  return out;
}

using Statement = std::vector<int32_t>;

/// Filler with the statements inserted, in the given order, at uniformly random depths, then the
/// question: exactly context_len tokens.
std::vector<int32_t> assemble(SplitMix64& rng, int64_t context_len, const std::vector<Statement>& statements,
                              const std::vector<int32_t>& question) {
  int64_t fixed = static_cast<int64_t>(question.size());
  for (const Statement& s : statements) fixed += static_cast<int64_t>(s.size());
  if (fixed + kMinFiller > context_len)
    throw std::logic_error("task statements do not fit the context (min_context_len is wrong)");
  const int64_t filler_len = context_len - fixed;
  std::vector<int64_t> depths(statements.size());
  for (int64_t& d : depths) d = static_cast<int64_t>(rng.below(static_cast<uint64_t>(filler_len) + 1));
  std::sort(depths.begin(), depths.end());
  const std::vector<int32_t> text = filler(rng, filler_len);
  std::vector<int32_t> prompt;
  prompt.reserve(static_cast<size_t>(context_len));
  int64_t at = 0;
  for (size_t i = 0; i < statements.size(); ++i) {
    prompt.insert(prompt.end(), text.begin() + at, text.begin() + depths[i]);
    prompt.insert(prompt.end(), statements[i].begin(), statements[i].end());
    at = depths[i];
  }
  prompt.insert(prompt.end(), text.begin() + at, text.end());
  prompt.insert(prompt.end(), question.begin(), question.end());
  return prompt;
}

template <typename T>
void shuffle(SplitMix64& rng, std::vector<T>& v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// The value follows its key directly, and a question ends with the key, so an answer continues
// its question as the value continues the key in the statement.
Statement key_value(int32_t key, const std::vector<int32_t>& value) {
  Statement s = {kKey, key};
  s.insert(s.end(), value.begin(), value.end());
  s.push_back(kPeriod);
  return s;
}

/// The example of the first question (asked at the end of the prompt), with up to
/// max_questions - 1 of the others after it.
TaskExample ask(Task task, std::vector<int32_t> prompt, const std::vector<QuestionAnswer>& asked, int max_questions) {
  TaskExample ex;
  ex.task = task;
  ex.prompt = std::move(prompt);
  ex.answer = asked[0].answer;
  for (size_t i = 1; i < asked.size() && static_cast<int>(i) < max_questions; ++i) ex.more.push_back(asked[i]);
  return ex;
}

TaskExample needles(SplitMix64& rng, int64_t context_len, int num_needles, Task task, int max_questions) {
  // Keys: the asked one first. Values: 6 words. All distinct.
  constexpr int kValueWords = 6;
  const std::vector<int32_t> words = distinct_names(rng, num_needles * (1 + kValueWords));
  std::vector<Statement> statements;
  std::vector<QuestionAnswer> asked;
  for (int i = 0; i < num_needles; ++i) {
    const auto value = words.begin() + num_needles + i * kValueWords;
    const int32_t key = words[static_cast<size_t>(i)];
    asked.push_back({{kQuestion, kFind, key}, std::vector<int32_t>(value, value + kValueWords)});
    statements.push_back(key_value(key, asked.back().answer));
  }
  shuffle(rng, statements);
  return ask(task, assemble(rng, context_len, statements, asked[0].question), asked, max_questions);
}

TaskExample multi_value(SplitMix64& rng, int64_t context_len, int max_questions) {
  const int num_keys = static_cast<int>(rng.between(3, std::clamp<int64_t>(context_len / 64, 3, 7)));
  std::vector<int64_t> times(static_cast<size_t>(num_keys));
  int words_needed = num_keys;
  for (size_t i = 0; i < times.size(); ++i) words_needed += 2 * static_cast<int>(times[i] = i == 0 ? 3 : rng.between(1, 3));
  const std::vector<int32_t> words = distinct_names(rng, words_needed);
  const std::vector<int32_t> keys(words.begin(), words.begin() + num_keys);
  // (key index, statement): the asked key three times, the others one to three times.
  std::vector<std::pair<size_t, Statement>> stated;
  auto value = words.begin() + num_keys;
  for (size_t i = 0; i < keys.size(); ++i)
    for (int64_t t = 0; t < times[i]; ++t, value += 2) stated.emplace_back(i, key_value(keys[i], {value[0], value[1]}));
  shuffle(rng, stated);
  std::vector<Statement> statements;
  std::vector<QuestionAnswer> asked;  // values in order of appearance
  for (int32_t key : keys) asked.push_back({{kQuestion, kValues, key}, {}});
  for (const auto& [key, s] : stated) {
    statements.push_back(s);
    asked[key].answer.insert(asked[key].answer.end(), s.begin() + 2, s.end() - 1);
  }
  return ask(Task::multi_value, assemble(rng, context_len, statements, asked[0].question), asked, max_questions);
}

TaskExample chain(SplitMix64& rng, int64_t context_len, int max_questions) {
  const int num_chains = static_cast<int>(
      rng.between(std::clamp<int64_t>(context_len / 128, 1, 3), std::clamp<int64_t>(context_len / 96, 2, 5)));
  std::vector<int> hops(static_cast<size_t>(num_chains));
  int nodes = 0;
  for (int& h : hops) nodes += (h = static_cast<int>(rng.between(4, 6))) + 1;
  const std::vector<int32_t> words = distinct_names(rng, nodes);
  std::vector<Statement> statements;
  std::vector<QuestionAnswer> asked;  // one per chain, from its first word
  size_t at = 0;
  for (int c = 0; c < num_chains; ++c) {
    const int h_count = hops[static_cast<size_t>(c)];
    for (int h = 0; h < h_count; ++h) statements.push_back({kLink, words[at + h], words[at + h + 1], kPeriod});
    asked.push_back({{kQuestion, kChain, words[at]},
                     std::vector<int32_t>(words.begin() + static_cast<long>(at) + 1,
                                          words.begin() + static_cast<long>(at) + 1 + h_count)});
    at += static_cast<size_t>(h_count) + 1;
  }
  shuffle(rng, statements);
  return ask(Task::chain, assemble(rng, context_len, statements, asked[0].question), asked, max_questions);
}

TaskExample frequent(SplitMix64& rng, int64_t context_len) {
  // Counts with clear margins: c1 > c2 > c3 >= 2 x every other item's.
  const int64_t n = std::max<int64_t>(32, context_len / 48);
  const int64_t c3 = std::max<int64_t>(3, n / 10);
  const int64_t c2 = c3 * rng.between(14, 17) / 10;
  const int64_t c1 = c2 * rng.between(14, 17) / 10;
  const int others = 12;
  const std::vector<int32_t> items = distinct_names(rng, 3 + others);
  std::vector<Statement> statements;
  auto state = [&](int32_t item, int64_t times) {
    for (int64_t t = 0; t < times; ++t) statements.push_back({kItem, item, kPeriod});
  };
  state(items[0], c1);
  state(items[1], c2);
  state(items[2], c3);
  for (int i = 0; i < others; ++i) state(items[3 + static_cast<size_t>(i)], rng.between(1, std::max<int64_t>(1, c3 / 2)));
  shuffle(rng, statements);
  TaskExample ex;
  ex.task = Task::frequent;
  ex.answer = {items[0], items[1], items[2]};
  ex.prompt = assemble(rng, context_len, statements, {kQuestion, kTop});
  return ex;
}

}  // namespace

const std::vector<Task>& all_tasks() { return kTasks; }

const char* task_name(Task task) {
  switch (task) {
    case Task::single_needle: return "single_needle";
    case Task::multi_key: return "multi_key";
    case Task::multi_value: return "multi_value";
    case Task::chain: return "chain";
    case Task::frequent: return "frequent";
  }
  return "?";
}

Task parse_task(const std::string& name, const char* argument) {
  for (Task t : kTasks)
    if (name == task_name(t)) return t;
  throw ArgumentError("parse_task", argument,
                      "unknown task '" + name + "' (single_needle, multi_key, multi_value, chain, frequent)");
}

std::string TaskVocab::word(int32_t token) {
  static const char* const kStructure[] = {"<eos>", "<mask>", ".",     "key",   "is",
                                           "link",  "to",     "item",  "question:", "find",
                                           "values", "chain", "top",   "answer:"};
  if (token < 0 || token >= size) return "<" + std::to_string(token) + ">";
  if (token < first_content) {
    if (token < static_cast<int32_t>(sizeof(kStructure) / sizeof(kStructure[0]))) return kStructure[token];
    return "<s" + std::to_string(token) + ">";
  }
  static const char kConsonants[] = "bdfgklmnprstvz";
  static const char kVowels[] = "aeiou";
  const int syllables = 14 * 5;
  const int i = token - first_content;
  const int a = i % syllables, b = (i / syllables + 3 * i) % syllables;  // distinct pairs for i < 4900
  return std::string{kConsonants[a / 5], kVowels[a % 5], kConsonants[b / 5], kVowels[b % 5]};
}

std::string TaskVocab::render(const std::vector<int32_t>& tokens, size_t max_tokens) {
  std::string out;
  const size_t n = tokens.size();
  const bool elide = n > max_tokens;
  const size_t head = elide ? max_tokens / 2 : n, tail_from = elide ? n - (max_tokens - head) : n;
  for (size_t i = 0; i < n; ++i) {
    if (i == head && elide) {
      out += " ... (" + std::to_string(tail_from - head) + " tokens) ...";
      i = tail_from;
    }
    if (!out.empty()) out += ' ';
    out += word(tokens[i]);
  }
  return out;
}

int64_t min_context_len(Task task) {
  // The statements at their most numerous for the length, the question and kMinFiller tokens of
  // filler. Contexts this short are mostly facts: the first stage of the training curriculum.
  switch (task) {
    case Task::single_needle: return 64;
    case Task::multi_key:
    case Task::multi_value:
    case Task::chain: return 96;
    case Task::frequent: return 128;
  }
  return 256;
}

TaskExample make_example(Task task, int64_t context_len, uint64_t seed, int max_questions) {
  LOSA_CHECK_ARG(max_questions >= 1, "max_questions", "must be >= 1, got ", max_questions);
  LOSA_CHECK_ARG(context_len >= min_context_len(task), "context_len",
                 "is " + std::to_string(context_len) + "; the task needs at least " +
                     std::to_string(min_context_len(task)) + " tokens");
  LOSA_CHECK_ARG(context_len <= (int64_t{1} << 24), "context_len",
                 "is " + std::to_string(context_len) + "; at most 16M tokens");
  SplitMix64 rng(splitmix64_mix(seed) ^ splitmix64_mix((static_cast<uint64_t>(task) << 40) ^
                                                         static_cast<uint64_t>(context_len)));
  TaskExample ex;
  switch (task) {
    case Task::single_needle: ex = needles(rng, context_len, 1, task, max_questions); break;
    case Task::multi_key:
      ex = needles(rng, context_len, static_cast<int>(rng.between(4, std::clamp<int64_t>(context_len / 48, 4, 12))),
                   task, max_questions);
      break;
    case Task::multi_value: ex = multi_value(rng, context_len, max_questions); break;
    case Task::chain: ex = chain(rng, context_len, max_questions); break;
    case Task::frequent: ex = frequent(rng, context_len); break;
  }
  ex.answer.push_back(TaskVocab::eos);
  for (QuestionAnswer& qa : ex.more) qa.answer.push_back(TaskVocab::eos);
  return ex;
}

bool is_correct(const TaskExample& example, const std::vector<int32_t>& generated) {
  return generated == example.answer;
}

}  // namespace losa::eval
