// From what the files say (TokenizerSpec) to the tables the tokenizer runs on, refusing files
// that contradict themselves: Hugging Face would fail on them too, or tokenize silently wrong.
#include <algorithm>
#include <cstdio>

#include "byte_level.hpp"
#include "losa/errors.hpp"
#include "tokenizer_impl.hpp"

namespace losa::runtime {
namespace {

// Ids index dense tables; a vocabulary of Qwen's size needs 152K. A bound keeps a corrupt id
// (2^31 - 1, say) from asking for gigabytes.
constexpr TokenId kMaxTokenId = 1 << 24;

std::string hex_byte(int b) {
  char text[8];
  std::snprintf(text, sizeof(text), "0x%02X", b);
  return text;
}

void check_id(TokenId id, const std::string& path, const std::string& what) {
  if (id >= kMaxTokenId) {
    throw FileError(path, what + " has id " + std::to_string(id) + ", beyond the " +
                              std::to_string(kMaxTokenId) + " losa supports");
  }
}

}  // namespace

std::shared_ptr<const Tokenizer::Impl> build_tokenizer(const TokenizerSpec& spec) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->source = spec.source;
  impl->normalization = spec.normalization;

  TokenId size = 0;
  for (const auto& [text, id] : spec.vocab) {
    check_id(id, spec.vocab_path, "token '" + text + "'");
    size = std::max(size, id + 1);
  }
  for (const AddedToken& token : spec.added) {
    check_id(token.id, spec.added_path, "added token '" + token.content + "'");
    size = std::max(size, token.id + 1);
  }
  impl->kind_by_id.assign(size, Tokenizer::Impl::kAbsent);
  impl->bytes_by_id.assign(size, std::string());
  impl->text_by_id.assign(size, std::string());

  impl->id_by_text.reserve(spec.vocab.size() + spec.added.size());
  for (const auto& [text, id] : spec.vocab) {
    if (impl->kind_by_id[id] != Tokenizer::Impl::kAbsent) {
      throw FileError(spec.vocab_path, "tokens '" + impl->text_by_id[id] + "' and '" + text +
                                           "' share the id " + std::to_string(id));
    }
    impl->text_by_id[id] = text;
    impl->kind_by_id[id] = Tokenizer::Impl::kPresent;
    impl->bytes_by_id[id] = byte_level::token_to_bytes(text);
    impl->id_by_text.emplace(text, id);
  }

  std::array<TokenId, 256> byte_tokens{};
  for (int b = 0; b < 256; ++b) {
    const std::string& spelling = byte_level::byte_to_char()[b];
    const auto it = impl->id_by_text.find(spelling);
    if (it == impl->id_by_text.end()) {
      throw FileError(spec.vocab_path, "lacks the byte-level token '" + spelling + "' of byte " +
                                           hex_byte(b) + " (every byte needs one)");
    }
    byte_tokens[b] = it->second;
  }

  std::vector<BpeModel::Merge> merges;
  merges.reserve(spec.merges.size());
  for (const TokenizerSpec::MergeLine& line : spec.merges) {
    const auto find = [&](const std::string& text, const char* role) {
      const auto it = impl->id_by_text.find(text);
      if (it == impl->id_by_text.end()) {
        throw FileError(spec.merges_path, line.where + ": the " + role + " '" + text +
                                              "' is not in the vocabulary (" + spec.vocab_path +
                                              ")");
      }
      return it->second;
    };
    merges.push_back(BpeModel::Merge{find(line.left, "left token"), find(line.right, "right token"),
                                     find(line.left + line.right, "merged token")});
  }
  impl->bpe = std::make_unique<BpeModel>(byte_tokens, merges);

  // Added tokens: by id; their text overrides a vocabulary token of the same id (as in HF).
  impl->added = spec.added;
  std::sort(impl->added.begin(), impl->added.end(),
            [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  std::unordered_map<std::string, TokenId> added_ids;
  for (std::size_t i = 0; i < impl->added.size(); ++i) {
    AddedToken& token = impl->added[i];
    if (i > 0 && impl->added[i - 1].id == token.id) {
      throw FileError(spec.added_path, "added tokens '" + impl->added[i - 1].content + "' and '" +
                                           token.content + "' share the id " +
                                           std::to_string(token.id));
    }
    const auto [previous, fresh] = added_ids.emplace(token.content, token.id);
    if (!fresh) {
      throw FileError(spec.added_path, "added token '" + token.content + "' has two ids, " +
                                           std::to_string(previous->second) + " and " +
                                           std::to_string(token.id));
    }
    const auto& names = spec.names.all;
    token.special =
        token.special || std::find(names.begin(), names.end(), token.content) != names.end();
    impl->id_by_text[token.content] = token.id;
    impl->text_by_id[token.id] = token.content;
    impl->kind_by_id[token.id] =
        Tokenizer::Impl::kPresent | (token.special ? Tokenizer::Impl::kSpecial : 0);
    // Decoding uses the form that was matched: normalized tokens in their normalized spelling.
    impl->bytes_by_id[token.id] = byte_level::token_to_bytes(
        token.normalized ? normalize(token.content, spec.normalization) : token.content);
  }
  std::vector<std::string> patterns;
  for (const AddedToken& token : impl->added) {
    patterns.push_back(token.normalized ? normalize(token.content, spec.normalization)
                                        : token.content);
  }
  impl->raw_matcher = std::make_unique<AddedTokenMatcher>(impl->added, patterns, false);
  impl->normalized_matcher = std::make_unique<AddedTokenMatcher>(impl->added, patterns, true);

  std::string error;
  impl->split_regex = Regex::compile(spec.split_pattern, &error);
  if (!impl->split_regex) {
    throw FileError(spec.source, "the pre-tokenizer pattern does not compile: " + error);
  }
  const auto named = [&](const std::optional<std::string>& name) -> std::optional<TokenId> {
    if (!name) return std::nullopt;
    const auto it = impl->id_by_text.find(*name);
    if (it == impl->id_by_text.end()) return std::nullopt;
    return it->second;
  };
  impl->eos = named(spec.names.eos);
  impl->mask = named(spec.names.mask);
  return impl;
}

}  // namespace losa::runtime
