#pragma once
// BlasSingleThreaded: a scope in which OpenBLAS runs each call on its calling thread.
//
// cvgrad's CPU threads are OpenMP's (core/parallel.h). OpenBLAS (Debian's pthreads build) has a
// pool of its own, whose threads spin, calling sched_yield, for a while after each call: on a
// 2-core machine they then take turns with the OpenMP threads of whatever op runs next. Callers
// that are parallel_for's threads (conv2d's per-image GEMMs) or whose GEMMs are too small to
// gain from a second thread (matmul below kBlasThreadedMinFlops) open one of these.
#include <cstdint>
#include <mutex>

#ifdef CVG_WITH_BLAS
#include <cblas.h>
#endif

namespace cvg {

// Multiply-adds (M N K per batch, summed) below which matmul runs BLAS single-threaded. DANN's
// fully connected layers (GEMMs up to 128 x 768 x 100 = 9.8e6) made its source-only training
// step 1.4x slower on 2 cores with BLAS's threads (63 -> 44 ms without); a 256^3 product
// (1.7e7) still gains from a second thread (290 -> 470 us without), so the line sits below it.
inline constexpr double kBlasThreadedMinFlops = 1.6e7;

// While one of these lives, OpenBLAS runs each call on its calling thread: the callers are
// parallel_for's threads, and each of them starting BLAS's own threads would put two thread
// pools on the same cores. openblas_set_num_threads is process-wide, so the scopes are counted:
// the first to open saves BLAS's thread count and the last to close restores it (a matmul on
// another thread meanwhile runs single-threaded, which is slower but never wrong). Only the
// pthreads build of OpenBLAS (Debian's default) is touched: its OpenMP build already runs
// single-threaded inside an OpenMP region, and there openblas_set_num_threads would set the
// OpenMP thread count, ours too. Without OpenMP nothing is split across threads, and BLAS keeps
// its own.
class BlasSingleThreaded {
 public:
  BlasSingleThreaded() {
#if defined(CVG_WITH_BLAS) && defined(_OPENMP)
    std::lock_guard<std::mutex> lock(state().mutex);
    if (state().open++ == 0) {
      state().saved = openblas_get_parallel() == 1 ? openblas_get_num_threads() : 1;
      if (state().saved != 1) openblas_set_num_threads(1);
    }
#endif
  }
  ~BlasSingleThreaded() {
#if defined(CVG_WITH_BLAS) && defined(_OPENMP)
    std::lock_guard<std::mutex> lock(state().mutex);
    if (--state().open == 0 && state().saved != 1) openblas_set_num_threads(state().saved);
#endif
  }
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  struct State {
    std::mutex mutex;
    int open = 0;   // scopes alive
    int saved = 1;  // BLAS's thread count before the first of them
  };
  static State& state() {
    static State s;
    return s;
  }
};

}  // namespace cvg
