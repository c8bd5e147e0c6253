// losa::runtime::Tokenizer: encode and decode over the tables of tokenizer_impl.hpp.
#include "losa/runtime/tokenizer.hpp"

#include <cstdio>

#include "losa/errors.hpp"
#include "tokenizer_impl.hpp"
#include "utf8.hpp"

namespace losa::runtime {

std::vector<TokenId> Tokenizer::Impl::encode(std::string_view text,
                                             const EncodeOptions& options) const {
  const std::size_t bad = utf8::first_invalid(text);
  if (bad != std::string_view::npos) {
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02X", static_cast<unsigned char>(text[bad]));
    throw ArgumentError("Tokenizer::encode", "text",
                        "is not valid UTF-8: byte " + std::to_string(bad) + " (" + byte +
                            ") does not start a well-formed character");
  }
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 8);  // about 4 bytes per token for English and code
  Regex::Scratch scratch(*split_regex);
  BpeEncoder bpe_encoder(*bpe);
  // 1. Added tokens that match the raw text; 2. normalize the text between them (HF's order).
  std::vector<AddedTokenMatcher::Segment> segments;
  raw_matcher->split(text, options.split_special_tokens, segments);
  for (const auto& segment : segments) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    const std::string normalized =
        normalize(text.substr(segment.begin, segment.end - segment.begin), normalization);
    encode_normalized(normalized, options, scratch, bpe_encoder, ids);
  }
  return ids;
}

void Tokenizer::Impl::encode_normalized(std::string_view text, const EncodeOptions& options,
                                        Regex::Scratch& scratch, BpeEncoder& bpe_encoder,
                                        std::vector<TokenId>& ids) const {
  // 3. Added tokens that match the normalized text; 4. pre-tokenize the rest; 5. BPE each word.
  std::vector<AddedTokenMatcher::Segment> segments;
  if (normalized_matcher->empty()) {
    segments.push_back({0, text.size(), -1});
  } else {
    normalized_matcher->split(text, options.split_special_tokens, segments);
  }
  std::vector<std::string_view> words;
  for (const auto& segment : segments) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    words.clear();
    split_isolated(*split_regex, text.substr(segment.begin, segment.end - segment.begin), scratch,
                   words);
    for (std::string_view word : words) bpe_encoder.encode_word(word, ids);
  }
}

std::string Tokenizer::Impl::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::string bytes;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const TokenId id = ids[i];
    if (!contains(id)) {
      throw ArgumentError("Tokenizer::decode", "ids",
                          "holds " + std::to_string(id) + " at position " + std::to_string(i) +
                              ", which is not a token (ids run from 0 to " +
                              std::to_string(kind_by_id.size() - 1) + "; " + source + ")");
    }
    if (skip_special && (kind_by_id[id] & kSpecial)) continue;
    bytes += bytes_by_id[id];
  }
  return utf8::replace_invalid(bytes);
}

Tokenizer Tokenizer::load(const std::string& model_dir) {
  return Tokenizer(build_tokenizer(read_tokenizer_spec(model_dir)));
}

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(const Tokenizer&) = default;
Tokenizer& Tokenizer::operator=(const Tokenizer&) = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<TokenId> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  return impl_->encode(text, options);
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  return impl_->decode(ids, skip_special);
}

namespace {

void require_token(const Tokenizer::Impl& impl, TokenId id, const char* function) {
  if (!impl.contains(id)) {
    throw ArgumentError(
        function, "id",
        "is " + std::to_string(id) + ", which is not a token (" + impl.source + ")");
  }
}

}  // namespace

const std::string& Tokenizer::token_bytes(TokenId id) const {
  require_token(*impl_, id, "Tokenizer::token_bytes");
  return impl_->bytes_by_id[id];
}

const std::string& Tokenizer::token_text(TokenId id) const {
  require_token(*impl_, id, "Tokenizer::token_text");
  return impl_->text_by_id[id];
}

bool Tokenizer::contains(TokenId id) const { return impl_->contains(id); }
bool Tokenizer::is_special(TokenId id) const { return impl_->is_special(id); }

std::optional<TokenId> Tokenizer::find_token_id(std::string_view token) const {
  const auto it = impl_->id_by_text.find(std::string(token));
  if (it == impl_->id_by_text.end()) return std::nullopt;
  return it->second;
}

TokenId Tokenizer::token_id(std::string_view token) const {
  const auto id = find_token_id(token);
  LOSA_CHECK_ARG(id.has_value(), "token", "'", token, "' is not a token of ", impl_->source);
  return *id;
}

std::optional<TokenId> Tokenizer::mask_token_id() const { return impl_->mask; }
std::optional<TokenId> Tokenizer::eos_token_id() const { return impl_->eos; }
TokenId Tokenizer::vocab_size() const { return static_cast<TokenId>(impl_->kind_by_id.size()); }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace losa::runtime
