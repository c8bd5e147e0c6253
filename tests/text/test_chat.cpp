// render_chat against the prompts transformers' apply_chat_template renders from
// chat_template.jinja (committed in reference.json), and its argument checks.
#include <gtest/gtest.h>

#include "losa/errors.hpp"
#include "losa/runtime/chat.hpp"
#include "text_fixtures.hpp"

namespace losa::test {
namespace {

using runtime::ChatMessage;
using runtime::render_chat;

std::vector<ChatMessage> messages_of(const Json& entry) {
  std::vector<ChatMessage> messages;
  for (const Json& m : entry["messages"]) {
    ChatMessage message{m["role"].get<std::string>(), m["content"].get<std::string>(), {}};
    if (m.contains("reasoning_content")) {
      message.reasoning_content = m["reasoning_content"].get<std::string>();
    }
    messages.push_back(message);
  }
  return messages;
}

TEST(Chat, RendersAsTheTemplate) {
  ASSERT_GE(reference()["chat"].size(), 10u);
  for (const Json& entry : reference()["chat"]) {
    SCOPED_TRACE(entry["name"].get<std::string>());
    // enable_thinking null: the template saw it undefined, which means thinking on.
    const bool thinking =
        entry["enable_thinking"].is_null() || entry["enable_thinking"].get<bool>();
    EXPECT_EQ(render_chat(messages_of(entry), entry["add_generation_prompt"].get<bool>(), thinking),
              entry["prompt"].get<std::string>());
  }
}

TEST(Chat, RejectsAnEmptyConversation) {
  expect_error<ArgumentError>([] { render_chat({}); }, {"argument 'messages'", "is empty"});
}

TEST(Chat, RejectsAnUnknownRoleByPosition) {
  expect_error<ArgumentError>(
      [] {
        render_chat({{"user", "hi", {}}, {"robot", "beep", {}}});
      },
      {"argument 'messages'", "'robot' at position 1"});
}

}  // namespace
}  // namespace losa::test
