#pragma once
// parallel_for over [0, n) in contiguous chunks on up to `threads` std::threads (the calling
// thread takes the first chunk). Simple on purpose: a thread per chunk per call; the runtime's
// CPU work items (a weight matrix, a layer's sequences) are large enough to pay for it.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace losa::runtime::detail {

/// Threads to use when the caller asks for 0 (all the hardware offers).
inline int resolve_threads(int requested) {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

/// Calls body(begin, end) on disjoint chunks covering [0, n); rethrows the first exception.
template <typename Body>
void parallel_for(int64_t n, int threads, Body&& body) {
  if (n <= 0) return;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(resolve_threads(threads), n));
  if (workers == 1) {
    body(int64_t{0}, n);
    return;
  }
  const int64_t chunk = (n + workers - 1) / workers;
  std::vector<std::exception_ptr> errors(workers);
  std::vector<std::thread> pool;
  auto run = [&](int64_t w) {
    try {
      const int64_t begin = w * chunk, end = std::min(n, begin + chunk);
      if (begin < end) body(begin, end);
    } catch (...) {
      errors[w] = std::current_exception();
    }
  };
  for (int64_t w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace losa::runtime::detail
