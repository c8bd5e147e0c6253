#include "bpe.hpp"

#include <algorithm>

namespace losa::runtime {
namespace {

/// Heap order: the smallest rank first, then the leftmost position (std heaps are max-heaps,
/// so "less" means "popped later").
struct PoppedLater {
  template <typename Candidate>
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.position > b.position;
  }
};

}  // namespace

BpeModel::BpeModel(const std::array<TokenId, 256>& byte_tokens, const std::vector<Merge>& merges)
    : byte_tokens_(byte_tokens) {
  rules_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const Merge& m = merges[rank];
    rules_[key(m.left, m.right)] = Rule{static_cast<std::uint32_t>(rank), m.result};
  }
}

const BpeModel::Rule* BpeModel::find(TokenId left, TokenId right) const {
  const auto it = rules_.find(key(left, right));
  return it == rules_.end() ? nullptr : &it->second;
}

void BpeEncoder::encode_word(std::string_view word, std::vector<TokenId>& out) {
  if (word.size() == 1) {
    out.push_back(model_.byte_token(static_cast<unsigned char>(word[0])));
    return;
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    lookup_key_.assign(word.data(), word.size());  // reused buffer: no allocation per lookup
    const auto hit = cache_.find(lookup_key_);
    if (hit != cache_.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  merge(word);
  const std::size_t first = out.size();
  for (const Symbol& s : symbols_) {
    if (s.length > 0) out.push_back(s.token);
  }
  if (cacheable && cache_.size() < kMaxCachedWords) {
    cache_.emplace(std::string(word), std::vector<TokenId>(out.begin() + first, out.end()));
  }
}

void BpeEncoder::merge(std::string_view word) {
  const int n = static_cast<int>(word.size());
  symbols_.resize(n);
  for (int i = 0; i < n; ++i) {
    symbols_[i] = Symbol{model_.byte_token(static_cast<unsigned char>(word[i])), i - 1,
                         i + 1 < n ? i + 1 : -1, 1};
  }
  heap_.clear();
  for (int i = 0; i + 1 < n; ++i) {
    if (const BpeModel::Rule* rule = model_.find(symbols_[i].token, symbols_[i + 1].token)) {
      heap_.push_back(Candidate{rule->rank, i, rule->result});
    }
  }
  std::make_heap(heap_.begin(), heap_.end(), PoppedLater{});
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), PoppedLater{});
    const Candidate top = heap_.back();
    heap_.pop_back();
    Symbol& left = symbols_[top.position];
    if (left.length == 0 || left.next == -1) continue;  // merged away, or now the last symbol
    const Symbol right = symbols_[left.next];
    // Stale entry: the pair at this position changed since it was queued.
    const BpeModel::Rule* rule = model_.find(left.token, right.token);
    if (rule == nullptr || rule->result != top.result) continue;

    symbols_[left.next].length = 0;
    left.token = top.result;
    left.length += right.length;
    left.next = right.next;
    if (right.next != -1) symbols_[right.next].prev = top.position;

    if (left.prev != -1) {
      if (const BpeModel::Rule* r = model_.find(symbols_[left.prev].token, left.token)) {
        heap_.push_back(Candidate{r->rank, left.prev, r->result});
        std::push_heap(heap_.begin(), heap_.end(), PoppedLater{});
      }
    }
    if (left.next != -1) {
      if (const BpeModel::Rule* r = model_.find(left.token, symbols_[left.next].token)) {
        heap_.push_back(Candidate{r->rank, top.position, r->result});
        std::push_heap(heap_.begin(), heap_.end(), PoppedLater{});
      }
    }
  }
}

}  // namespace losa::runtime
