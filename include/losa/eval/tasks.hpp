#pragma once
// The long-context task suite of `losa eval` and of the shipped model's training data
// (train/): RULER-style retrieval, multi-hop and aggregation over a synthetic language, generated
// deterministically from (task, context length, seed) by this one implementation.
//
// The language: token 0 is the end of text (eos), 1 the mask token, 2..31 structure words
// ("key", "link", "item", ...), 32..255 name words (keys, values, chain nodes, counted items),
// 256..511 filler words. Filler is sentences of filler words drawn from a fixed random bigram
// chain (a "grammar" shared by all examples). Names never occur in the filler, and an example
// draws its names without repeats: a needle's key and value words each occur in one statement, as
// RULER's needle keys and values (numbers, UUIDs in an essay) and Zoology's MQAR pairs do (a
// multi_value key is stated three times, a chain node is one link's target and the next one's
// source, an item is counted by repetition). Finding a fact is then content matching, and a value
// continues its key: "key k v1 .. v6 ." is asked as
// "question: find k" and answered "v1 .. v6 <eos>". (A first version drew keys and values from the
// filler's words and put "is"/"answer:" between key and value; a model of a few million
// parameters did not learn it in 16K steps, bench/NOTES.md.) A prompt is filler with the task's
// statements inserted at random depths, then the question; the answer is names, then eos.
//
// The tasks make later denoising steps matter: answers are longer than a block of 4, and in
// `chain` and `frequent` a token can be decided only after the one before it (the next hop of a
// chain is keyed by the previous answer word; the second most frequent item is "the most frequent
// one that is not the first").
#include <cstdint>
#include <string>
#include <vector>

namespace losa::eval {

enum class Task {
  single_needle,  ///< one "key k v1..v6 ." in the filler; "find k" -> v1..v6
  multi_key,      ///< 4..12 such needles with distinct keys (fewer below 576 tokens)
  multi_value,    ///< one key stated 3 times with 2-word values, among other keys -> all 6 words
  chain,          ///< "link a b ." statements of 2..5 chains; "chain s" -> the 4..6 hops from s
  frequent,       ///< "item w ." statements; "top" -> the 3 most frequent items, most frequent first
};

const std::vector<Task>& all_tasks();
const char* task_name(Task task);
/// Throws ArgumentError naming `argument` for an unknown name.
Task parse_task(const std::string& name, const char* argument = "task");

/// The vocabulary of the suite.
struct TaskVocab {
  static constexpr int32_t eos = 0;
  static constexpr int32_t mask = 1;
  static constexpr int32_t first_content = 32;
  static constexpr int32_t first_filler = 256;  ///< names are first_content..first_filler-1
  static constexpr int32_t size = 512;  ///< vocab_size of a model trained on the suite
  /// A printable spelling: structure words as themselves, content words as two syllables.
  static std::string word(int32_t token);
  /// Tokens joined by spaces; runs of more than `max_tokens` are elided in the middle.
  static std::string render(const std::vector<int32_t>& tokens, size_t max_tokens = SIZE_MAX);
};

struct QuestionAnswer {
  std::vector<int32_t> question;  ///< "question: ... answer:"
  std::vector<int32_t> answer;    ///< content words, then eos
};

struct TaskExample {
  Task task = Task::single_needle;
  std::vector<int32_t> prompt;  ///< exactly the requested context length, ending with the question
  std::vector<int32_t> answer;  ///< content words, then eos
  /// Further questions about the same context, asked one after another after the answer (more
  /// supervision per context for training; evaluation asks only the first).
  std::vector<QuestionAnswer> more;
};

/// The shortest context a task fits in (its statements and question plus some filler).
int64_t min_context_len(Task task);

/// One example of exactly `context_len` prompt tokens (>= min_context_len(task); ArgumentError
/// otherwise), a pure function of its arguments; with up to `max_questions - 1` further questions
/// (the prompt and answer do not depend on max_questions).
TaskExample make_example(Task task, int64_t context_len, uint64_t seed, int max_questions = 1);

/// Exact-match scoring: `generated` (up to and including the first eos, as the decoder returns
/// it) equals the answer.
bool is_correct(const TaskExample& example, const std::vector<int32_t>& generated);

}  // namespace losa::eval
