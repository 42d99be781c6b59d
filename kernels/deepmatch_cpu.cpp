// CPU loops of the Deep Matching layers: every functor of kernels/deepmatch_math.h writes the
// elements [0, n) of its output(s), one writer per element, split across threads with
// parallel_for, so results do not depend on the thread count.
#include "core/parallel.h"
#include "kernels/deepmatch.h"

namespace cvg {

namespace {

// Elements per chunk: each costs from a handful of loads (power, gathers) to a K^2 loop (the
// reference-descriptor gradient of the correlation), so chunks stay small enough to balance two
// threads.
constexpr int64_t kGrain = 2048;
// The correlation's gradients do a window of terms for kDmCorrChunk channels per item, and have
// few items (a few per reference point or target pixel): a small grain keeps both threads busy.
template <typename F>
constexpr int64_t kGrainOf = kGrain;
template <typename T>
constexpr int64_t kGrainOf<DmCorrGradRef<T>> = 4;
template <typename T>
constexpr int64_t kGrainOf<DmCorrGradTarget<T>> = 64;

template <typename F>
void run_cpu(const F& f, int64_t n) {
  parallel_for(n, kGrainOf<F>, [&](int64_t b, int64_t e) {
    for (int64_t l = b; l < e; ++l) f(l);
  });
}

}  // namespace

#define CVG_DM_DEFINE_CPU(name, F)                                                  \
  void dm_##name##_cpu(const F<float>& f, int64_t n) { run_cpu(f, n); }            \
  void dm_##name##_cpu(const F<double>& f, int64_t n) { run_cpu(f, n); }
CVG_DM_KERNELS(CVG_DM_DEFINE_CPU)
#undef CVG_DM_DEFINE_CPU

}  // namespace cvg
