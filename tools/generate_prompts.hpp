#pragma once
// The prompts of `losa generate`: token ids (--tokens, --tokens-file), or text (--prompt,
// --prompt-file, --prompts-jsonl) rendered as a chat turn with --chat and encoded with the model
// folder's tokenizer. Every error names the flag (and file, line) the bad prompt came from.
#include <cstdint>
#include <string>
#include <vector>

#include "generate.hpp"
#include "losa/runtime/tokenizer.hpp"

namespace losa::tools {

/// A prompt given as text, and where it came from for messages: "--prompt",
/// "--prompt-file 'a.txt'", "--prompts-jsonl 'p.jsonl' line 3".
struct TextPrompt {
  std::string text;
  std::string source;
};

bool has_token_prompts(const GenerateFlags& flags);
bool has_text_prompts(const GenerateFlags& flags);

/// --tokens (one prompt each) or --tokens-file (one prompt a line).
std::vector<std::vector<int32_t>> read_token_prompts(const GenerateFlags& flags);

/// --prompt (one prompt each), --prompt-file (one prompt a file, read whole; '-': standard
/// input) or --prompts-jsonl (one prompt a non-blank line: a JSON string, or an object whose
/// "prompt" is one).
std::vector<TextPrompt> read_text_prompts(const GenerateFlags& flags);

/// The ids the model reads for each prompt: its text, or with --chat the Qwen3 chat rendering of
/// [system (--system, when given), user (the prompt)] with the generation prompt and the thinking
/// switch (--no-think), encoded with `tokenizer`.
std::vector<std::vector<int32_t>> encode_text_prompts(const std::vector<TextPrompt>& prompts,
                                                      const GenerateFlags& flags,
                                                      const runtime::Tokenizer& tokenizer);

}  // namespace losa::tools
