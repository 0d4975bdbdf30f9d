// parallel_for over [begin, end) in chunks of at least grain, with OpenMP when built with it.
// The split of work depends on the thread count, so kernels that reduce must combine partial
// results in a fixed order (see reduce_cpu.cpp) to stay bit-identical across thread counts.
#pragma once
#include <algorithm>
#include <cstdint>

#include "okd/build_config.h"
#if OKD_HAVE_OPENMP
#include <omp.h>
#endif

namespace okd {

int num_threads();

template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  if (end <= begin) return;
  int64_t n = end - begin;
#if OKD_HAVE_OPENMP
  int64_t threads = std::min<int64_t>(num_threads(), (n + grain - 1) / std::max<int64_t>(grain, 1));
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(static_cast <int>(threads))
    {
      int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      int64_t chunk = (n + nt - 1) / nt;
      int64_t b = begin + t * chunk, e = std::min(end, b + chunk);
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  f(begin, end);
}

}  // namespace okd
