#pragma once
// Byte-pair encoding of one pre-tokenized word by merge rank, with the exact merge order of
// Hugging Face's BPE model (tokenizers/src/models/bpe/word.rs): a min-heap of candidate pairs
// ordered by (rank, position), stale entries skipped when popped.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "losa/runtime/tokenizer.hpp"

namespace losa::runtime {

/// The merge table. Immutable once built; shared by every encode.
class BpeModel {
 public:
  /// One line of merges.txt: `left` + `right` -> `result`, in rank order.
  struct Merge {
    TokenId left;
    TokenId right;
    TokenId result;
  };

  /// `byte_tokens[b]` is the token of the single byte b; `merges` are in rank order (a pair
  /// listed twice keeps its last rank, as Hugging Face's merge map does).
  BpeModel(const std::array<TokenId, 256>& byte_tokens, const std::vector<Merge>& merges);

  struct Rule {
    std::uint32_t rank;
    TokenId result;
  };
  /// The rule merging `left` then `right`, or nullptr.
  const Rule* find(TokenId left, TokenId right) const;
  TokenId byte_token(unsigned char byte) const { return byte_tokens_[byte]; }

 private:
  static std::uint64_t key(TokenId left, TokenId right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
  }
  std::array<TokenId, 256> byte_tokens_;
  std::unordered_map<std::uint64_t, Rule> rules_;
};

/// Encodes words with one BpeModel, remembering the words it has seen (text repeats its words:
/// the cache makes a megabyte of text cost a few thousand BPE runs). One per thread and call.
class BpeEncoder {
 public:
  explicit BpeEncoder(const BpeModel& model) : model_(model) {}

  /// Appends the tokens of `word` (raw bytes, non-empty) to `out`.
  void encode_word(std::string_view word, std::vector<TokenId>& out);

 private:
  struct Symbol {
    TokenId token;
    int prev;
    int next;
    int length;  ///< bytes covered; 0 once merged into its left neighbour
  };
  struct Candidate {
    std::uint32_t rank;
    int position;
    TokenId result;
  };
  void merge(std::string_view word);

  // Words this long are rare; caching them would only grow the map (Hugging Face: 256 too).
  static constexpr std::size_t kMaxCachedWordBytes = 256;
  static constexpr std::size_t kMaxCachedWords = 200000;

  const BpeModel& model_;
  std::unordered_map<std::string, std::vector<TokenId>> cache_;
  std::string lookup_key_;
  std::vector<Symbol> symbols_;
  std::vector<Candidate> heap_;
};

}  // namespace losa::runtime
