// Timing for the micro-benchmark programs (bench_tensor, bench_conv): the best wall time of each
// of several functions, timed interleaved.
#pragma once
#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <vector>

namespace okd::apps {

// Best wall time in seconds of each of fs. They are timed interleaved, one run of each in turn for
// `repeat` rounds, after at least 0.2 s of warm-up runs each (thread pools started, pages
// touched), so that load from other processes on a shared machine falls on all of them alike
// instead of on whichever happened to be timed at a bad moment.
inline std::vector<double> best_seconds(int repeat, const std::vector<std::function<void()>>& fs) {
  for (const auto& f : fs) {
    const auto warm_start = std::chrono::steady_clock::now();
    do f();
    while (std::chrono::steady_clock::now() - warm_start < std::chrono::milliseconds(200));
  }
  std::vector<double> best(fs.size(), std::numeric_limits<double>::infinity());
  for (int r = 0; r < repeat; ++r)
    for (size_t i = 0; i < fs.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      fs[i]();
      const auto t1 = std::chrono::steady_clock::now();
      best[i] = std::min(best[i], std::chrono::duration<double>(t1 - t0).count());
    }
  return best;
}

}  // namespace okd::apps
