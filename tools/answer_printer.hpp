#pragma once
// What `losa generate` prints for text prompts, as decode() reports final blocks (its
// BlockObserver). One prompt: the answer streams, block by block, flushed, then a newline.
// Several prompts: each answer is printed whole, in prompt order, as soon as it and every answer
// before it are done, after a header line "=== answer I/N ===" and followed by a newline.
// The text is TextStream's: whole characters only, no mask or special tokens, cut before the
// first stop string; a stop id (eos or --stop-ids) ends the text before that token.
#include <cstdio>
#include <string>
#include <vector>

#include "losa/runtime/decoder.hpp"
#include "losa/runtime/text_stream.hpp"

namespace losa::tools {

class AnswerPrinter {
 public:
  /// Writes to `out` (stdout in the tool). `stop_strings` as TextStream takes them.
  AnswerPrinter(const runtime::Tokenizer& tokenizer, const std::vector<std::string>& stop_strings,
                int num_prompts, std::FILE* out);

  /// decode()'s BlockObserver: false once a stop string has ended the block's sequence.
  bool on_block(const runtime::FinalBlock& block);

  struct Answer {
    std::string text;                      ///< as printed (without the newline added after it)
    std::vector<std::string> block_texts;  ///< what each of its blocks added to `text`
    std::string stop_string;               ///< the stop string that ended it, if one did
    bool done = false;
  };
  const std::vector<Answer>& answers() const { return answers_; }

 private:
  void write(const std::string& text);
  void print_finished_answers();

  std::vector<runtime::TextStream> streams_;
  std::vector<Answer> answers_;
  std::FILE* out_;
  size_t next_to_print_ = 0;  // several prompts: the first answer not printed yet
};

}  // namespace losa::tools
