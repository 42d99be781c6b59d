#pragma once
// parallel_for splits [0, n) into contiguous chunks across the CPU threads (OpenMP when the
// build has it). Work below `grain` iterations runs on the calling thread: small tensors are
// faster without the fork/join. fn(begin, end) must be safe to run concurrently on disjoint
// ranges. Results never depend on the number of threads, because each index is written by
// exactly one chunk and reductions combine per-chunk partials in a fixed order.
#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cvg {

inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
#ifdef _OPENMP
  if (n > grain && num_threads() > 1 && !omp_in_parallel()) {
    const int64_t nt = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
    const int64_t chunk = (n + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t t = 0; t < nt; ++t) {
      const int64_t b = t * chunk, e = std::min(n, b + chunk);
      if (b < e) fn(b, e);
    }
    return;
  }
#endif
  fn(int64_t{0}, n);
}

}  // namespace cvg
