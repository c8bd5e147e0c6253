// A line-by-line rendering of chat_template.jinja (SDAR-8B-Chat), without its tools branch.
// Python string methods of the template are spelled out: strip('\n') and friends remove
// newlines only, split('</think>')[-1] is the text after the last "</think>", and so on.
#include "losa/runtime/chat.hpp"

#include "losa/errors.hpp"

namespace losa::runtime {
namespace {

std::string lstrip_newlines(const std::string& s) {
  const std::size_t begin = s.find_first_not_of('\n');
  return begin == std::string::npos ? "" : s.substr(begin);
}

std::string rstrip_newlines(const std::string& s) {
  const std::size_t end = s.find_last_not_of('\n');
  return end == std::string::npos ? "" : s.substr(0, end + 1);
}

std::string strip_newlines(const std::string& s) { return lstrip_newlines(rstrip_newlines(s)); }

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_tool_response(const std::string& content) {
  return starts_with(content, "<tool_response>") && ends_with(content, "</tool_response>");
}

/// ns.last_query_index: the last user turn that is not a wrapped tool response (the template
/// starts from the last index and keeps it when there is none).
std::size_t last_query_index(const std::vector<ChatMessage>& messages) {
  for (std::size_t i = messages.size(); i-- > 0;) {
    if (messages[i].role == "user" && !is_tool_response(messages[i].content)) return i;
  }
  return messages.size() - 1;
}

void render_assistant(const std::vector<ChatMessage>& messages, std::size_t index,
                      std::size_t query_index, std::string& out) {
  const ChatMessage& message = messages[index];
  std::string content = message.content;
  std::string reasoning;
  if (message.reasoning_content) {
    reasoning = *message.reasoning_content;
  } else {
    const std::size_t last_close = message.content.rfind("</think>");
    if (last_close != std::string::npos) {
      content = lstrip_newlines(message.content.substr(last_close + 8));
      const std::string before =
          rstrip_newlines(message.content.substr(0, message.content.find("</think>")));
      const std::size_t last_open = before.rfind("<think>");
      reasoning =
          lstrip_newlines(last_open == std::string::npos ? before : before.substr(last_open + 7));
    }
  }
  const bool last = index + 1 == messages.size();
  if (index > query_index && (last || !reasoning.empty())) {
    out += "<|im_start|>" + message.role + "\n<think>\n" + strip_newlines(reasoning) +
           "\n</think>\n\n" + lstrip_newlines(content);
  } else {
    out += "<|im_start|>" + message.role + "\n" + content;
  }
  out += "<|im_end|>\n";
}

}  // namespace

std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        bool enable_thinking) {
  LOSA_CHECK_ARG(!messages.empty(), "messages", "is empty (the template needs one turn at least)");
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    LOSA_CHECK_ARG(role == "system" || role == "user" || role == "assistant" || role == "tool",
                   "messages", "has role '", role, "' at position ", i,
                   " (expected system, user, assistant or tool)");
  }
  std::string out;
  if (messages[0].role == "system") {
    out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";
  }
  const std::size_t query_index = last_query_index(messages);
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (message.role == "user" || (message.role == "system" && i > 0)) {
      out += "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n";
    } else if (message.role == "assistant") {
      render_assistant(messages, i, query_index, out);
    } else if (message.role == "tool") {
      // Consecutive tool responses share one user turn.
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + message.content + "\n</tool_response>";
      if (i + 1 == messages.size() || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

}  // namespace losa::runtime
