#include "answer_printer.hpp"

#include "losa/errors.hpp"

namespace losa::tools {

AnswerPrinter::AnswerPrinter(const runtime::Tokenizer& tokenizer,
                             const std::vector<std::string>& stop_strings, int num_prompts,
                             std::FILE* out)
    : answers_(static_cast<size_t>(num_prompts)), out_(out) {
  LOSA_CHECK_ARG(num_prompts >= 1, "num_prompts", "must be >= 1, got ", num_prompts);
  LOSA_CHECK_ARG(out != nullptr, "out", "must be an open file");
  streams_.reserve(answers_.size());
  for (int i = 0; i < num_prompts; ++i) streams_.emplace_back(tokenizer, stop_strings, true);
}

bool AnswerPrinter::on_block(const runtime::FinalBlock& block) {
  LOSA_CHECK_ARG(block.sequence >= 0 && block.sequence < static_cast<int>(answers_.size()), "block",
                 "sequence ", block.sequence, " is not one of the ", answers_.size(), " prompts");
  Answer& answer = answers_[block.sequence];
  LOSA_CHECK_ARG(!answer.done, "block", "sequence ", block.sequence, " has already ended");
  runtime::TextStream& stream = streams_[block.sequence];
  // A stop id ends the text before it: the id may be an ordinary token (--stop-ids).
  std::vector<runtime::TokenId> ids = block.tokens;
  if (block.ends_with_stop_id && !ids.empty()) ids.pop_back();
  runtime::TextStream::Result piece = stream.push(ids);
  if (!piece.stopped && block.last) {
    runtime::TextStream::Result rest = stream.finish();
    piece.text += rest.text;
    piece.stopped = rest.stopped;
    piece.stop = rest.stop;
  }
  answer.text += piece.text;
  answer.block_texts.push_back(piece.text);
  answer.stop_string = piece.stop;
  answer.done = piece.stopped || block.last;
  if (answers_.size() == 1) {
    write(piece.text);
    if (answer.done) write("\n");
  } else {
    print_finished_answers();
  }
  return !piece.stopped;
}

void AnswerPrinter::write(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);  // streaming: the reader sees each block as it commits
}

void AnswerPrinter::print_finished_answers() {
  for (; next_to_print_ < answers_.size() && answers_[next_to_print_].done; ++next_to_print_) {
    write("=== answer " + std::to_string(next_to_print_ + 1) + "/" +
          std::to_string(answers_.size()) + " ===\n" + answers_[next_to_print_].text + "\n");
  }
}

}  // namespace losa::tools
