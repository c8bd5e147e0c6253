#include "losa/runtime/stop_strings.hpp"

#include <algorithm>

#include "losa/errors.hpp"

namespace losa::runtime {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings)
    : stops_(std::move(stop_strings)) {
  for (std::size_t i = 0; i < stops_.size(); ++i) {
    LOSA_CHECK_ARG(!stops_[i].empty(), "stop_strings", "has an empty string at position ", i,
                   " (it would stop before the first character)");
  }
}

StopStringMatcher::Result StopStringMatcher::push(std::string_view text) {
  Result result;
  if (stopped_) {
    result.stopped = true;
    return result;
  }
  std::string buffer = held_;
  buffer.append(text);
  held_.clear();

  // The stop completing first: earliest end, then the longest (earliest start) at that end.
  std::size_t best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& stop : stops_) {
    const std::size_t at = buffer.find(stop);
    if (at == std::string::npos) continue;
    const std::size_t end = at + stop.size();
    if (end < best_end || (end == best_end && stop.size() > best->size())) {
      best_end = end;
      best = &stop;
    }
  }
  if (best != nullptr) {
    stopped_ = true;
    result.stopped = true;
    result.stop = *best;
    result.text = buffer.substr(0, best_end - best->size());
    return result;
  }

  // Hold back the longest tail that a stop string starts with. A stop string's first byte
  // starts a UTF-8 character, so the text shown always ends on a character boundary.
  std::size_t hold = 0;
  for (const std::string& stop : stops_) {
    for (std::size_t length = std::min(stop.size() - 1, buffer.size()); length > hold; --length) {
      if (buffer.compare(buffer.size() - length, length, stop, 0, length) == 0) {
        hold = length;
        break;
      }
    }
  }
  held_ = buffer.substr(buffer.size() - hold);
  result.text = buffer.substr(0, buffer.size() - hold);
  return result;
}

std::string StopStringMatcher::finish() {
  std::string rest;
  rest.swap(held_);
  return stopped_ ? std::string() : rest;
}

}  // namespace losa::runtime
