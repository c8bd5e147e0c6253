#pragma once
// The Qwen3 chat format of SDAR's (and TraDo's) chat_template.jinja, rendered without a template
// engine: system/user/assistant/tool turns, the generation prompt and the thinking switch.
// Function calling (the template's `tools` list and an assistant's `tool_calls`) is out of
// scope: a ChatMessage cannot carry them, so every prompt this renders is one the template
// renders for a conversation without tools.
#include <optional>
#include <string>
#include <vector>

namespace losa::runtime {

/// One turn of a conversation.
struct ChatMessage {
  std::string role;  ///< "system", "user", "assistant" or "tool" (a tool's response)
  std::string content;
  /// An assistant turn's reasoning, when kept apart from `content` (the template's
  /// reasoning_content). Without it, a "<think>...</think>" inside `content` is split off.
  std::optional<std::string> reasoning_content;
};

/// The prompt text for `messages`, exactly as chat_template.jinja renders it with
/// add_generation_prompt and enable_thinking. As the template does, assistant turns before the
/// last user query lose their reasoning; later ones keep it in a <think> block. With
/// `add_generation_prompt` the prompt ends with "<|im_start|>assistant\n", followed by an empty
/// "<think>\n\n</think>\n\n" when `enable_thinking` is false (the model then answers without
/// thinking). Encode the result with Tokenizer::encode: its "<|im_start|>" and "<|im_end|>" are
/// the special tokens.
/// Throws ArgumentError('messages') for an empty list or an unknown role (naming its position).
std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true,
                        bool enable_thinking = true);

}  // namespace losa::runtime
