// CPU loops of the Deep Matching layers: every functor of kernels/deepmatch_*_math.h writes the
// elements [0, n) of its output(s), one writer per element, split across threads with
// parallel_for, so results do not depend on the thread count. The loop counter has the
// functor's index type (n fits it: kernels/deepmatch.cpp checked).
#include <algorithm>
#include <type_traits>
#include <vector>

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
template <typename T, typename I>
constexpr int64_t kGrainOf<DmCorrGradRef<T, I>> = 4;
template <typename T, typename I>
constexpr int64_t kGrainOf<DmCorrGradTarget<T, I>> = 64;

template <typename I, typename F>
void run_cpu(const F& f, int64_t n) {
  parallel_for(n, kGrainOf<F>, [&](int64_t b, int64_t e) {
    for (I l = static_cast<I>(b); l < static_cast<I>(e); ++l) f(l);
  });
}

// The tiled correlation (DmCorrTiled): blocks split across threads, each thread with its own
// scratch buffer; within a block the loads in item order, then the scores point by point
// (compute_row: vectorised over the window, no score computed outside it; the GPU's
// 32-sums-per-thread items would waste the band's corners here, where nothing is gained by
// them: tests/ops/test_deepmatch.cpp runs those items on the CPU too).
template <typename I, typename T>
void run_cpu(const DmCorrTiled<T, I>& f, int64_t blocks) {
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> scratch(static_cast<size_t>(f.t.scratch(f.g.d)));
    std::vector<T> acc(static_cast<size_t>(f.g.k));
    for (I bi = static_cast<I>(b0); bi < static_cast<I>(b1); ++bi) {
      const auto b = f.block(bi);
      f.load_target_rows(b, scratch.data());
      for (I l = 0; l < f.ref_items(b); ++l) f.load_ref(b, l, scratch.data());
      for (I il = 0; il < b.ni; ++il)
        for (int jj = 0; jj < kDmCorrTileJ; ++jj) f.compute_row(b, il, jj, scratch.data(), acc.data());
    }
  });
}

// The tiled gradient in the descriptors (DmCorrGradRefTiled), the GPU's blocks as the GPU runs
// them, every thread of a block in turn between the block's barriers (the CPU's own default
// is DmCorrGradRef; this runs under DmCorrVersionGuard(2), for the tests).
template <typename I, typename T>
void run_cpu(const DmCorrGradRefTiled<T, I>& f, int64_t blocks) {
  using Sums = typename DmCorrGradRefTiled<T, I>::Sums;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> scratch(static_cast<size_t>(f.t.scratch(f.g.d)));
    std::vector<Sums> acc(static_cast<size_t>(f.t.threads()));
    const I items = f.t.row_items(f.g.d);
    for (I bi = static_cast<I>(b0); bi < static_cast<I>(b1); ++bi) {
      const auto b = f.block(bi);
      std::fill(acc.begin(), acc.end(), Sums{});
      for (I ky = b.ky0; ky < b.ky1; ++ky) {
        if (!dm_in(f.row_y(b, ky), f.g.ht)) continue;
        for (I l = 0; l < items; ++l) f.load_row(b, ky, l, scratch.data());
        for (I tid = 0; tid < f.t.threads(); ++tid) f.accumulate(tid, scratch.data(), acc[tid]);
      }
      for (I tid = 0; tid < f.t.threads(); ++tid) f.stash(tid, acc[tid], scratch.data());
      for (I l = 0; l < f.out_items(); ++l) f.finish(b, l, scratch.data());
    }
  });
}

// The tiled gradient in the target (DmCorrGradTargetTiled), likewise the GPU's blocks thread by
// thread (the CPU's default is DmCorrGradTarget: the same sums in the same order).
template <typename I, typename T>
void run_cpu(const DmCorrGradTargetTiled<T, I>& f, int64_t blocks) {
  using Sums = typename DmCorrGradTargetTiled<T, I>::Sums;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> scratch(static_cast<size_t>(f.t.scratch()));
    std::vector<Sums> acc(static_cast<size_t>(kDmGradThreads));
    for (I bi = static_cast<I>(b0); bi < static_cast<I>(b1); ++bi) {
      const auto b = f.block(bi);
      std::fill(acc.begin(), acc.end(), Sums{});
      for (I il = 0; il < b.ni; ++il) {
        for (I l = 0; l < f.ref_items(); ++l) f.load_ref(b, il, l, scratch.data());
        for (I tid = 0; tid < kDmGradThreads; ++tid) f.accumulate(b, il, tid, scratch.data(), acc[tid]);
      }
      for (I tid = 0; tid < kDmGradThreads; ++tid) f.store(b, tid, acc[tid]);
    }
  });
}

// A DmGridSum's total from its blocks' sums, as the GPU's last block takes it.
template <typename T, typename I>
void grid_total(const DmGridSum<T, I>& s) {
  std::vector<T> parts(kDmGridBlock);
  for (int t = 0; t < kDmGridBlock; ++t) parts[t] = s.part(t, [](const T* v) { return *v; });
  dm_tree_sum(parts.data(), kDmGridBlock);
  *s.total = s.finish(parts[0]);
}

// The hinge loss's forward (DmHingeLoss), each point's block as the GPU runs it: its threads'
// slices, their trees; then the loss from the points' sums (kernels/deepmatch_hinge_math.h).
template <typename I, typename T>
void run_cpu(const DmHingeLoss<T, I>& f, int64_t points) {
  if (points <= 0) return;
  const int64_t kk = int64_t{f.g.k} * f.g.k;
  parallel_for(points, std::max<int64_t>(1, kGrain / kk), [&](int64_t p0, int64_t p1) {
    std::vector<T> sums(kDmGridBlock), counts(kDmGridBlock);
    for (I p = static_cast<I>(p0); p < static_cast<I>(p1); ++p) {
      for (int t = 0; t < kDmGridBlock; ++t) {
        const DmHingeSums<T> s = f.slice(p, static_cast<I>(t));
        sums[t] = s.sum;
        counts[t] = s.active;
      }
      dm_tree_sum(sums.data(), kDmGridBlock);
      dm_tree_sum(counts.data(), kDmGridBlock);
      f.loss.block_sum[p] = sums[0];
      f.active[p] = counts[0];
    }
  });
  grid_total(f.loss);
}

// dm_power's one-pass backward (DmPowerBackward): blocks of kDmGridBlock items as the GPU runs
// them, each block's terms of d nu in a tree, then their total.
template <typename I, typename T>
void run_cpu(const DmPowerBackward<T, I>& f, int64_t items) {
  if (items <= 0) return;
  const int64_t blocks = (items + kDmGridBlock - 1) / kDmGridBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> sums(kDmGridBlock);
    for (int64_t b = b0; b < b1; ++b) {
      for (int t = 0; t < kDmGridBlock; ++t) {
        const int64_t l = b * kDmGridBlock + t;
        sums[t] = l < items ? f.item(static_cast<I>(l)) : T(0);
      }
      if (!f.dnu.total) continue;
      dm_tree_sum(sums.data(), kDmGridBlock);
      f.dnu.block_sum[b] = sums[0];
    }
  });
  if (f.dnu.total) grid_total(f.dnu);
}

// Whole point planes (the *Plane functors), each thread with its own scratch planes; points
// are split across threads, a few thousand fine elements per chunk.
template <typename I, typename F>
void run_planes(const F& f, int64_t points) {
  using T = std::remove_cvref_t<decltype(*f.out)>;
  const int64_t kk = int64_t{f.g.k} * f.g.k;
  parallel_for(points, std::max<int64_t>(1, kGrain / kk), [&](int64_t p0, int64_t p1) {
    std::vector<T> best(static_cast<size_t>(kk));
    std::vector<I> win(static_cast<size_t>(kk));
    const DmPlaneScratch<T, I> sc{best.data(), win.data()};
    for (I p = static_cast<I>(p0); p < static_cast<I>(p1); ++p) f(p, sc);
  });
}

}  // namespace

#define CVG_DM_DEFINE_CPU_ONE(name, F, T, I) \
  void dm_##name##_cpu(const F<T, I>& f, int64_t n) { run_cpu<I>(f, n); }
#define CVG_DM_DEFINE_CPU(name, F) CVG_DM_EACH_TYPE(CVG_DM_DEFINE_CPU_ONE, name, F)
CVG_DM_KERNELS(CVG_DM_DEFINE_CPU)
#define CVG_DM_DEFINE_PLANES_ONE(name, F, T, I) \
  void dm_##name##_cpu(const F<T, I>& f, int64_t n) { run_planes<I>(f, n); }
#define CVG_DM_DEFINE_PLANES(name, F) CVG_DM_EACH_TYPE(CVG_DM_DEFINE_PLANES_ONE, name, F)
CVG_DM_CPU_KERNELS(CVG_DM_DEFINE_PLANES)
#undef CVG_DM_DEFINE_PLANES
#undef CVG_DM_DEFINE_PLANES_ONE
#undef CVG_DM_DEFINE_CPU
#undef CVG_DM_DEFINE_CPU_ONE

}  // namespace cvg
