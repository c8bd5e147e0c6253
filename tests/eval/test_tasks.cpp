// The task suite: exact lengths, determinism, answers that the context holds, and the properties
// that make each task what it claims to be (checked against the generated tokens, not trusted).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "losa/errors.hpp"
#include "losa/eval/tasks.hpp"

namespace losa::eval {
namespace {

constexpr int32_t kKey = 3, kLink = 5, kItem = 7, kQuestion = 8;

int64_t count_of(const std::vector<int32_t>& v, int32_t t) { return std::count(v.begin(), v.end(), t); }

/// The words after "key k" up to the period, for every statement of key k, in order.
std::vector<std::vector<int32_t>> values_of(const std::vector<int32_t>& p, int32_t key) {
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i + 2 < p.size(); ++i) {
    if (p[i] != kKey || p[i + 1] != key) continue;
    std::vector<int32_t> value;
    for (size_t j = i + 2; j < p.size() && p[j] != 2; ++j) value.push_back(p[j]);
    out.push_back(value);
  }
  return out;
}

TEST(Tasks, ExactLengthDeterministicAndInVocabulary) {
  for (Task task : all_tasks()) {
    for (int64_t len : {min_context_len(task), int64_t{256}, int64_t{300}, int64_t{4096}, int64_t{20000}}) {
      const TaskExample a = make_example(task, len, 7), b = make_example(task, len, 7), c = make_example(task, len, 8);
      ASSERT_EQ(static_cast<int64_t>(a.prompt.size()), len) << task_name(task);
      EXPECT_EQ(a.prompt, b.prompt);
      EXPECT_EQ(a.answer, b.answer);
      EXPECT_NE(a.prompt, c.prompt);
      ASSERT_GE(a.answer.size(), 4u) << "answers are longer than a block of 4 with eos";
      EXPECT_EQ(a.answer.back(), TaskVocab::eos);
      EXPECT_EQ(count_of(a.answer, TaskVocab::eos), 1);
      for (int32_t t : a.prompt) {
        ASSERT_GE(t, 2);  // never eos or the mask token
        ASSERT_LT(t, TaskVocab::size);
      }
      for (size_t i = 0; i + 1 < a.answer.size(); ++i) EXPECT_GE(a.answer[i], TaskVocab::first_content);
      // The question ("question: ...", no period after it) ends the prompt.
      const auto question = std::find(a.prompt.rbegin(), a.prompt.rend(), kQuestion);
      ASSERT_NE(question, a.prompt.rend());
      EXPECT_LE(question - a.prompt.rbegin(), 2);
      EXPECT_EQ(std::count(a.prompt.rbegin(), question, 2), 0);
    }
  }
}

TEST(Tasks, NamesOccurOnlyInStatementsAndQuestions) {
  // A name word (key, chain node, item) is always right after a structure word that introduces
  // it ("key", "link", "to", "item", "find", "values", "chain"), never inside the filler.
  // Values and a link's target follow another name; so every name is preceded by an introducer
  // or a name, and never by a filler word.
  const std::set<int32_t> introducers = {kKey, kLink, kItem, 9, 10, 11};
  for (Task task : all_tasks()) {
    for (uint64_t seed = 0; seed < 5; ++seed) {
      const TaskExample ex = make_example(task, 6000, seed);
      int64_t names = 0;
      for (size_t i = 0; i < ex.prompt.size(); ++i) {
        const int32_t t = ex.prompt[i];
        if (t < TaskVocab::first_content || t >= TaskVocab::first_filler) continue;
        ++names;
        ASSERT_GT(i, 0u);
        const int32_t before = ex.prompt[i - 1];
        const bool name_before = before >= TaskVocab::first_content && before < TaskVocab::first_filler;
        EXPECT_TRUE(introducers.count(before) || name_before) << task_name(task) << " name at " << i;
      }
      EXPECT_GT(names, 0) << task_name(task);
      if (task == Task::single_needle || task == Task::multi_key) {
        std::map<int32_t, int> seen;  // each name once in the statements, the key once more in the question
        for (int32_t t : ex.prompt)
          if (t >= TaskVocab::first_content && t < TaskVocab::first_filler) seen[t] += 1;
        for (auto [name, n] : seen) EXPECT_EQ(n, name == ex.prompt.back() ? 2 : 1) << task_name(task);
      }
    }
  }
}

TEST(Tasks, MoreQuestionsDoNotChangeTheFirst) {
  for (Task task : all_tasks()) {
    const TaskExample one = make_example(task, 2048, 3), many = make_example(task, 2048, 3, 8);
    EXPECT_EQ(one.prompt, many.prompt);
    EXPECT_EQ(one.answer, many.answer);
    EXPECT_TRUE(one.more.empty());
    if (task == Task::multi_key || task == Task::chain || task == Task::multi_value) EXPECT_FALSE(many.more.empty());
    for (const QuestionAnswer& qa : many.more) EXPECT_EQ(qa.answer.back(), TaskVocab::eos);
  }
}

TEST(Tasks, NeedleAnswersAreTheValueOfTheAskedKey) {
  for (Task task : {Task::single_needle, Task::multi_key}) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      const TaskExample ex = make_example(task, 3000, seed);
      const int32_t key = ex.prompt.back();
      const auto values = values_of(ex.prompt, key);
      ASSERT_EQ(values.size(), 1u) << "the asked key is stated once";
      EXPECT_EQ(values[0], std::vector<int32_t>(ex.answer.begin(), ex.answer.end() - 1));
      const int64_t needles = count_of(ex.prompt, kKey);
      if (task == Task::single_needle) EXPECT_EQ(needles, 1);
      else EXPECT_GE(needles, 4);
    }
  }
}

TEST(Tasks, MultiValueIsEveryValueInOrder) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const TaskExample ex = make_example(Task::multi_value, 3000, seed);
    const int32_t key = ex.prompt.back();
    std::vector<int32_t> joined;
    for (const auto& v : values_of(ex.prompt, key)) joined.insert(joined.end(), v.begin(), v.end());
    EXPECT_EQ(joined.size(), 6u);
    EXPECT_EQ(joined, std::vector<int32_t>(ex.answer.begin(), ex.answer.end() - 1));
  }
}

TEST(Tasks, ChainFollowsTheLinksFromTheAskedWord) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const TaskExample ex = make_example(Task::chain, 3000, seed);
    std::map<int32_t, std::vector<int32_t>> next;
    for (size_t i = 0; i + 3 < ex.prompt.size(); ++i)
      if (ex.prompt[i] == kLink && ex.prompt[i + 3] == 2) next[ex.prompt[i + 1]].push_back(ex.prompt[i + 2]);
    int32_t at = ex.prompt.back();
    std::vector<int32_t> walk;
    while (next.count(at)) {
      ASSERT_EQ(next[at].size(), 1u) << "one link from each word";
      at = next[at][0];
      walk.push_back(at);
    }
    EXPECT_GE(walk.size(), 4u);
    EXPECT_EQ(walk, std::vector<int32_t>(ex.answer.begin(), ex.answer.end() - 1));
  }
}

TEST(Tasks, FrequentIsTheTopThreeWithClearMargins) {
  for (int64_t len : {256, 4096, 32768}) {
    const TaskExample ex = make_example(Task::frequent, len, 5);
    std::map<int32_t, int64_t> counts;
    for (size_t i = 0; i + 1 < ex.prompt.size(); ++i)
      if (ex.prompt[i] == kItem) counts[ex.prompt[i + 1]] += 1;
    std::vector<std::pair<int64_t, int32_t>> ranked;
    for (auto [w, c] : counts) ranked.emplace_back(c, w);
    std::sort(ranked.rbegin(), ranked.rend());
    ASSERT_GE(ranked.size(), 4u);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ranked[i].second, ex.answer[i]);
    EXPECT_GT(ranked[0].first, ranked[1].first);
    EXPECT_GT(ranked[1].first, ranked[2].first);
    EXPECT_GE(ranked[2].first, 2 * ranked[3].first) << len;
  }
}

TEST(Tasks, ScoringIsExactMatch) {
  const TaskExample ex = make_example(Task::single_needle, 512, 1);
  EXPECT_TRUE(is_correct(ex, ex.answer));
  std::vector<int32_t> wrong = ex.answer;
  wrong[1] = wrong[1] == 40 ? 41 : 40;
  EXPECT_FALSE(is_correct(ex, wrong));
  EXPECT_FALSE(is_correct(ex, std::vector<int32_t>(ex.answer.begin(), ex.answer.end() - 1)));  // no eos
  EXPECT_FALSE(is_correct(ex, {}));
}

TEST(Tasks, BadArgumentsAreNamed) {
  try {
    make_example(Task::chain, min_context_len(Task::chain) - 1, 0);
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), "context_len");
  }
  EXPECT_THROW(make_example(Task::chain, 4096, 0, 0), ArgumentError);
  EXPECT_THROW(parse_task("needle"), ArgumentError);
  EXPECT_EQ(parse_task("chain"), Task::chain);
  EXPECT_EQ(TaskVocab::word(TaskVocab::eos), "<eos>");
  std::set<std::string> spellings;
  for (int32_t t = TaskVocab::first_content; t < TaskVocab::size; ++t) spellings.insert(TaskVocab::word(t));
  EXPECT_EQ(spellings.size(), static_cast<size_t>(TaskVocab::size - TaskVocab::first_content));
}

}  // namespace
}  // namespace losa::eval
