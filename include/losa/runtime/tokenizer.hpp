#pragma once
// The byte-level BPE tokenizer of Qwen2/Qwen3 models (SDAR, TraDo), equal to Hugging Face
// `tokenizers` on the same files. Encoding: added tokens split out first (leftmost, longest),
// NFC on the rest, the pre-tokenizer regex, GPT-2's byte-level alphabet, BPE by merge rank.
// Decoding: the tokens' bytes joined, ill-formed UTF-8 replaced by U+FFFD as Hugging Face does.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace losa::runtime {

using TokenId = std::int32_t;

/// A token added on top of the BPE vocabulary (Hugging Face's AddedToken) and its flags.
struct AddedToken {
  TokenId id = -1;
  std::string content;
  bool special = false;      ///< skipped by decode(ids, skip_special = true)
  bool normalized = false;   ///< matched in the NFC text (after the non-normalized ones)
  bool lstrip = false;       ///< a match takes the whitespace on its left with it
  bool rstrip = false;       ///< a match takes the whitespace on its right with it
  bool single_word = false;  ///< matches only when no word character touches it
};

/// Options of Tokenizer::encode.
struct EncodeOptions {
  /// Treat the text of special tokens as ordinary text (Hugging Face's split_special_tokens):
  /// a typed "<|im_end|>" then becomes "<", "|", "im", ... and cannot end a turn. Added tokens
  /// that are not special (<think>, <tool_call>) are still matched.
  bool split_special_tokens = false;
};

/// A tokenizer loaded from a model folder. Immutable after load: copies share the tables, and
/// every member function may be called from several threads at once.
class Tokenizer {
 public:
  /// Loads the tokenizer of a Hugging Face model folder, from tokenizer.json when present, else
  /// from vocab.json + merges.txt with the added tokens of tokenizer_config.json (its
  /// added_tokens_decoder; added_tokens.json only when that is absent). The special-token names
  /// of tokenizer_config.json (eos_token, mask_token, additional_special_tokens, ...) mark those
  /// tokens special, as transformers does.
  /// Throws ArgumentError('model_dir') for a folder without these files, FileError naming the
  /// file (and line or entry) for a malformed or inconsistent one.
  static Tokenizer load(const std::string& model_dir);

  /// The ids of `text` (UTF-8). No BOS/EOS is added: the Qwen post-processor adds none.
  /// Throws ArgumentError('text') if `text` is not valid UTF-8 (naming the byte offset).
  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const;

  /// The text of `ids`: the tokens' bytes joined, each ill-formed UTF-8 sequence replaced by one
  /// U+FFFD per maximal subpart (Hugging Face's decode with errors="replace"). With
  /// `skip_special`, special tokens are left out. Throws ArgumentError('ids') for an id that is
  /// not in the vocabulary (naming its position and value).
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const;

  /// The raw bytes token `id` stands for (may be part of a UTF-8 character).
  /// Throws ArgumentError('id') when `id` is not in the vocabulary.
  const std::string& token_bytes(TokenId id) const;

  /// How the files spell token `id`: "Ġthe" (GPT-2's byte alphabet: Ġ is a space) for a BPE
  /// token, "<|im_end|>" for an added token; find_token_id's inverse, what transformers'
  /// convert_ids_to_tokens shows. Throws ArgumentError('id') when `id` is not in the vocabulary.
  const std::string& token_text(TokenId id) const;

  /// Whether `id` names a token (BPE vocabulary or added). Ids of the model's padded embedding
  /// rows beyond the vocabulary are not tokens.
  bool contains(TokenId id) const;
  /// Whether `id` is a special token (skipped by decode(..., skip_special = true)).
  bool is_special(TokenId id) const;

  /// The id of a token by its text as the files spell it ("<|im_end|>", or "Ġthe" for a BPE
  /// token), or nullopt.
  std::optional<TokenId> find_token_id(std::string_view token) const;
  /// As find_token_id, but throws ArgumentError('token') when there is no such token.
  TokenId token_id(std::string_view token) const;

  /// The mask token of block diffusion (tokenizer_config.json's mask_token; SDAR: "<|MASK|>",
  /// 151669), or nullopt when the files name none.
  std::optional<TokenId> mask_token_id() const;
  /// tokenizer_config.json's eos_token (SDAR: "<|endoftext|>"), or nullopt. Chat turns end with
  /// "<|im_end|>": generation_config.json lists both as stop ids.
  std::optional<TokenId> eos_token_id() const;

  /// One more than the largest token id (SDAR: 151670; the model's embedding has 151936 rows).
  TokenId vocab_size() const;
  /// The added tokens, by id.
  const std::vector<AddedToken>& added_tokens() const;
  /// The files the tokenizer was read from, for messages ("DIR/tokenizer.json", ...).
  const std::string& source() const;

  ~Tokenizer();
  Tokenizer(const Tokenizer&);
  Tokenizer& operator=(const Tokenizer&);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  struct Impl;  ///< the tables; defined in src/runtime/tokenizer/tokenizer_impl.hpp

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace losa::runtime
