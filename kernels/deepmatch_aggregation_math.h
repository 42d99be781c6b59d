#pragma once
// Deep Matching: aggregation and disaggregation over p (per element, along runs of j, by spans
// of k), shared by deepmatch_cpu.cpp and deepmatch_cuda.cu; conventions in kernels/deepmatch.h.
#include "kernels/deepmatch_common_math.h"

namespace cvg {

// ---- aggregation and disaggregation over p ------------------------------------------------
// The children of reference (i, j) at a level are (i + d[ey], j + d[ex]) for ey, ex in {0, 1},
// with d = {lo, hi}; the corner index is e = 2 ey + ex. Parent (i, j) of child (i', j') through
// corner e is (i' - d[ey], j' - d[ex]).
template <typename I>
struct DmAggGeom {
  I n = 0, h = 0, w = 0, k = 1;  // score tensor N x H x W x K x K
  I lo = 0, hi = 1;              // the two child shifts
  FastDivOf<I> fkk, fh, fw;                 // by k^2, h, w (set with the sizes)

  CVG_HD I shift(int e) const { return e == 0 ? lo : hi; }
  // Element l's reference point (i, j) (n is never needed: neighbours are found by moving l).
  struct Where {
    I i, j;
  };
  CVG_HD Where where(I l) const {
    const auto p = dm_grid(fkk.div(l), fh, fw);
    return {p.i, p.j};
  }
  // Element l moved by (di, dj) reference points, at the same offset k.
  CVG_HD I moved(I l, I di, I dj) const {
    return l + (di * w + dj) * k * k;
  }
  // Number of in-grid children of row i (or column j with size w).
  CVG_HD I children(I i, I size) const {
    return (dm_in(i + lo, size) ? 1 : 0) + (dm_in(i + hi, size) ? 1 : 0);
  }
};

// The per-output expressions of the aggregation family, shared by the per-element functors
// below (at(ey, ex) loads from memory) and the runs further down (at(ey, ex) reads registers):
// at(ey, ex) is x at (i + sh[ey], j + sh[ex]), called only where that lies in the grid, in the
// order written here, so both versions compute the same bits.

// 1 / cnt for a child or parent count: a product of two per-axis counts in {1, 2}, so cnt is
// 1, 2 or 4 and x * (1 / cnt) is x / cnt exactly (a power of two scales without rounding
// twice), without the division's instruction sequence on a GPU.
template <typename T, typename I>
CVG_HD T dm_inv_count(I cnt) {
  return cnt == 4 ? T(0.25) : cnt == 2 ? T(0.5) : T(1);
}

// The four expressions take the 2 x 2 neighbourhood through at(ey, ex), which holds a fill
// value for a neighbour outside the grid: 0 (mean, spread: its term is +0, which leaves the sum
// unchanged bit for bit, since a sum that starts at +0 is never -0), -inf (best: it never
// beats) or, for the switches, kDmNoParent (route: it names no corner). So they need no grid
// test per corner: the per-element functors below test once per neighbour as they load, the
// walkers (runs, spans) leave the fill in registers they do not load. ncu found the walkers'
// kernels bound by instruction issue, and per-corner tests were a fifth of the disaggregation
// backward's PTX.

// The mean of the neighbourhood over its cnt in-grid members; 0 when cnt is 0.
template <typename T, typename I, typename At>
CVG_HD T dm_agg_mean(I cnt, At&& at) {
  T acc = T(0);
  for (int ey = 0; ey < 2; ++ey)
    for (int ex = 0; ex < 2; ++ex) acc += at(ey, ex);
  return cnt > 0 ? acc * dm_inv_count<T>(cnt) : T(0);
}

// The sum over the parents (i + sh[ey], j + sh[ex]) of x / children(parent), children(parent)
// = rows(ey) * cols(ex), the parent's in-grid children per axis (any value for a parent outside
// the grid, whose x is the fill 0).
template <typename T, typename At, typename Rows, typename Cols>
CVG_HD T dm_agg_spread(At&& at, Rows&& rows, Cols&& cols) {
  T acc = T(0);
  for (int ey = 0; ey < 2; ++ey)
    for (int ex = 0; ex < 2; ++ex) acc += at(ey, ex) * dm_inv_count<T>(rows(ey) * cols(ex));
  return acc;
}

// The first maximum over corners e = 2 ey + ex in e order (its corner in e_best), -inf and
// kDmNoParent when no corner is in the grid and finite.
constexpr uint8_t kDmNoParent = 0xFF;
template <typename T, typename At>
CVG_HD T dm_disagg_best(At&& at, uint8_t& e_best) {
  T best = dm_neg_inf<T>();
  e_best = kDmNoParent;
  for (int e = 0; e < 4; ++e) {
    const T v = at(e / 2, e % 2);
    if (dm_beats(v, best)) {
      best = v;
      e_best = static_cast<uint8_t>(e);
    }
  }
  return best;
}

// The sum of x over the corners e whose switch sw_at(ey, ex) names e.
template <typename T, typename SwAt, typename At>
CVG_HD T dm_disagg_route(SwAt&& sw_at, At&& at) {
  T acc = T(0);
  for (int e = 0; e < 4; ++e)
    if (sw_at(e / 2, e % 2) == e) acc += at(e / 2, e % 2);
  return acc;
}

// The per-element functors' at(ey, ex): x at element l moved to neighbour (i + sh[ey],
// j + sh[ex]), or fill outside the grid (not loaded).
template <typename T, typename U, typename I>
struct DmGridAt {
  const U* x;
  const DmAggGeom<I>& g;
  I l, i, j;
  const I (&sh)[2];
  T fill;
  CVG_HD T operator()(int ey, int ex) const {
    const bool in = dm_in(i + sh[ey], g.h) && dm_in(j + sh[ex], g.w);
    return in ? static_cast<T>(x[g.moved(l, sh[ey], sh[ex])]) : fill;
  }
};

// A[i, k] = mean over the in-grid children of S[child, k]; 0 for a point without children.
template <typename T, typename I>
struct DmAggForward {
  const T* s;
  DmAggGeom<I> g;
  T* out;
  CVG_HD void operator()(I l) const {
    const auto [i, j] = g.where(l);
    const I sh[2] = {g.lo, g.hi};
    out[l] = dm_agg_mean<T>(g.children(i, g.h) * g.children(j, g.w),
                            DmGridAt<T, T, I>{s, g, l, i, j, sh, T(0)});
  }
};

// d S[i', k] = sum over the in-grid parents of grad[parent, k] / children(parent).
template <typename T, typename I>
struct DmAggBackward {
  const T* grad;
  DmAggGeom<I> g;
  T* out;
  CVG_HD void operator()(I l) const {
    const auto [i, j] = g.where(l);
    const I sh[2] = {-g.lo, -g.hi};
    out[l] = dm_agg_spread<T>(
        DmGridAt<T, T, I>{grad, g, l, i, j, sh, T(0)},
        [&](int ey) { return g.children(i + sh[ey], g.h); },
        [&](int ex) { return g.children(j + sh[ex], g.w); });
  }
};

// Q_{l+1/2}[i', k] = max over the in-grid parents of Q_{l+1}[parent, k]; switch e* = the corner
// of the first maximum in e order, kDmNoParent (and -inf) when no parent is finite.
template <typename T, typename I>
struct DmDisaggForward {
  const T* q;
  DmAggGeom<I> g;
  T* out;
  uint8_t* sw;
  CVG_HD void operator()(I l) const {
    const auto [i, j] = g.where(l);
    const I sh[2] = {-g.lo, -g.hi};
    uint8_t e_best;
    out[l] = dm_disagg_best<T>(DmGridAt<T, T, I>{q, g, l, i, j, sh, dm_neg_inf<T>()}, e_best);
    sw[l] = e_best;
  }
};

// d Q_{l+1}[parent, k] = sum of grad[child, k] over the children whose switch names it.
template <typename T, typename I>
struct DmDisaggBackward {
  const T* grad;
  const uint8_t* sw;
  DmAggGeom<I> g;
  T* out;
  CVG_HD void operator()(I l) const {
    const auto [i, j] = g.where(l);
    const I sh[2] = {g.lo, g.hi};
    out[l] = dm_disagg_route<T>(DmGridAt<uint8_t, uint8_t, I>{sw, g, l, i, j, sh, kDmNoParent},
                                DmGridAt<T, T, I>{grad, g, l, i, j, sh, T(0)});
  }
};

// Adjoint of DmDisaggBackward: a child takes x at the parent its switch names (0 without one).
template <typename T, typename I>
struct DmDisaggGather {
  const T* x;
  const uint8_t* sw;
  DmAggGeom<I> g;
  T* out;
  CVG_HD void operator()(I l) const {
    const uint8_t e = sw[l];
    if (e == kDmNoParent) {
      out[l] = T(0);
      return;
    }
    out[l] = x[g.moved(l, -g.shift(e / 2), -g.shift(e % 2))];
  }
};

// ---- the aggregation family along runs of j (version 2, the GPU's default: kernels/deepmatch.h)
// Each output of the four kernels above reads a 2 x 2 neighbourhood: x at (i + rows[ey],
// j + cols[ex]), the columns Delta = hi - lo apart. Neighbouring points lie K^2 elements apart,
// far outside what one warp or its L1 shares, so every one of those 4 loads (8 with the
// switches) goes to L2; ncu found the per-element kernels bound in the SMs (77-85 % of SM
// throughput against 25-37 % of DRAM's: bench/results, 2026-11-22_3-dm-profile), which fewer
// load instructions per output may relieve. Here a work item walks a run of up to kDmAggRun
// outputs j = j0, j0 + Delta, ... of one row i, at one offset k: the larger column of one
// output is the smaller of the next, so a run loads kDmAggRun + 1 columns per row for
// kDmAggRun outputs (2.25 loads per output, 4.5 with switches). Neighbouring items are
// neighbouring k, so loads stay coalesced. Every output is the same expression as in the
// per-element functor (dm_agg_mean, ...), in the same order: the two versions give the same
// bits (tests/ops/test_deepmatch.cpp).
//
// Items: ((n H + i) S + s) K^2 + k with S = D ceil(W / (Delta Run)) strips per row,
// D = min(Delta, W) column classes: strip s = q D + r starts at j0 = q Delta Run + r.
//
// Run, the outputs per item: kDmAggRun (version 2) or kDmAggShortRun (version 4). A longer run
// shares more loads (2.25 per output at 8, 2.5 at 4) but holds 2 (Run + 1) values (twice that
// with the switches) in registers: ptxas gives the disaggregation's backward 54 registers at 8
// (4 blocks of 256 threads per SM; at 53 ncu measured 48 % occupancy, issue-bound at 61 % of
// copy bandwidth on an H100) and 40 at 4 (6 blocks), the aggregation's backward 48 and 32.
constexpr int kDmAggRun = 8;
constexpr int kDmAggShortRun = 4;

template <typename I, int Run = kDmAggRun>
struct DmAggRuns {
  I delta = 1, classes = 1, strips = 1;  // Delta, D, S
  FastDivOf<I> fstrips, fclasses, fdelta;  // by S, D and Delta (set with the sizes)

  struct Where {
    I row;  // n H + i
    I i, j0, k;
  };
  CVG_HD Where where(I l, const DmAggGeom<I>& g) const {
    const I rs = g.fkk.div(l), k = l - rs * g.k * g.k;
    const I row = fstrips.div(rs), s = rs - row * strips;
    const I q = fclasses.div(s), r = s - q * classes;
    const I i = row - g.fh.div(row) * g.h;
    return {row, i, q * delta * Run + r, k};
  }
};

// The columns of a run: c[ey][u] = x at (i + rows[ey], j0 + u Delta + min(cols)) for
// u <= `outputs`, where that lies in the grid (entries outside are never read). Output m then
// reads columns m and m + 1 (dm_quad). All of a run's loads come before its first store: the
// compiler may not move a load above a store that could alias it, so loads interleaved with
// stores would leave one load in flight per thread.
//
// Up: whether cols[0] < cols[1]. A walk's shifts are {lo, hi} (the forward aggregation and the
// disaggregation's backward) or {-lo, -hi} (the other two), and lo < hi at every level
// (kernels/deepmatch.cpp), so each functor knows its direction at compile time: no select per
// output between run columns m and m + 1 (a run-time direction cost 4 of them per tensor
// walked, in kernels ncu found bound by instruction issue).
template <bool Up, typename T, typename I, int N>
CVG_HD void dm_run_load(const T* x, const DmAggGeom<I>& g, I row, I i, I j0, I k, I outputs,
                        I delta, const I (&rows)[2], const I (&cols)[2], T (&c)[2][N]) {
  const I lo = Up ? cols[0] : cols[1];
  for (int ey = 0; ey < 2; ++ey) {
    if (!dm_in(i + rows[ey], g.h)) continue;
    const I base = ((row + rows[ey]) * g.w + j0 + lo) * g.k * g.k + k;
    CVG_UNROLL
    for (int u = 0; u < N; ++u)
      if (u <= outputs && dm_in(j0 + lo + u * delta, g.w))
        c[ey][u] = x[base + u * delta * g.k * g.k];
  }
}

// The 2 x 2 neighbourhood of output m from the run's columns: v[ey][ex] = x at
// (i + rows[ey], j + cols[ex]), column ex = 0 being run column m when Up, else m + 1 (m is a
// constant of an unrolled loop: every index is known, nothing goes to local memory).
template <bool Up, typename T, int N>
CVG_HD void dm_quad(const T (&c)[2][N], int m, T (&v)[2][2]) {
  CVG_UNROLL
  for (int ey = 0; ey < 2; ++ey) {
    v[ey][0] = c[ey][Up ? m : m + 1];
    v[ey][1] = c[ey][Up ? m + 1 : m];
  }
}

// Item l's run: load(row, i, j0, k, outputs) once, then body(base, i, j, m) per output m, base
// being the element (n, i, j, k).
template <typename I, int Run, typename Load, typename Body>
CVG_HD void dm_agg_run(I l, const DmAggGeom<I>& g, const DmAggRuns<I, Run>& r, Load&& load,
                       Body&& body) {
  const auto [row, i, j0, k] = r.where(l, g);
  if (j0 >= g.w) return;
  const I left = r.fdelta.div(g.w - j0 + r.delta - 1);  // outputs j0, j0 + Delta, ... below W
  const I outputs = left < Run ? left : I(Run);
  load(row, i, j0, k, outputs);
  CVG_UNROLL
  for (int m = 0; m < Run; ++m)
    if (m < outputs) body((row * g.w + j0 + m * r.delta) * g.k * g.k + k, i, j0 + m * r.delta, m);
}

// Every entry of a walker's register array set to v (what the walker leaves there for a
// neighbour outside the grid: see dm_agg_mean).
template <typename T, int A, int B>
CVG_HD void dm_fill(T (&c)[A][B], T v) {
  CVG_UNROLL
  for (int a = 0; a < A; ++a)
    CVG_UNROLL
    for (int b = 0; b < B; ++b) c[a][b] = v;
}
template <typename T, int A, int B, int C>
CVG_HD void dm_fill(T (&c)[A][B][C], T v) {
  CVG_UNROLL
  for (int a = 0; a < A; ++a) dm_fill(c[a], v);
}

// Item l's run over x: fn(e, i, j, at) per output, e being its flat element and at(ey, ex)
// reading the output's neighbourhood (rows and columns sh) from registers, `fill` where it lies
// outside the grid.
template <bool Up, typename T, typename I, int Run, typename Fn>
CVG_HD void dm_walk(const T* x, const DmAggGeom<I>& g, const DmAggRuns<I, Run>& r, I l,
                    const I (&sh)[2], T fill, Fn&& fn) {
  T c[2][Run + 1];
  dm_fill(c, fill);
  dm_agg_run(
      l, g, r,
      [&](I row, I i, I j0, I k, I n) {
        dm_run_load<Up>(x, g, row, i, j0, k, n, r.delta, sh, sh, c);
      },
      [&](I e, I i, I j, int m) {
        T v[2][2];
        dm_quad<Up>(c, m, v);
        fn(e, i, j, [&](int ey, int ex) { return v[ey][ex]; });
      });
}

// The same over two tensors of one shape: fn(e, i, j, at_x, at_y).
template <bool Up, typename T, typename U, typename I, int Run, typename Fn>
CVG_HD void dm_walk2(const T* x, const U* y, const DmAggGeom<I>& g, const DmAggRuns<I, Run>& r,
                     I l, const I (&sh)[2], T fill_x, U fill_y, Fn&& fn) {
  T c[2][Run + 1];
  U d[2][Run + 1];
  dm_fill(c, fill_x);
  dm_fill(d, fill_y);
  dm_agg_run(
      l, g, r,
      [&](I row, I i, I j0, I k, I n) {
        dm_run_load<Up>(x, g, row, i, j0, k, n, r.delta, sh, sh, c);
        dm_run_load<Up>(y, g, row, i, j0, k, n, r.delta, sh, sh, d);
      },
      [&](I e, I i, I j, int m) {
        T v[2][2];
        U u[2][2];
        dm_quad<Up>(c, m, v);
        dm_quad<Up>(d, m, u);
        fn(e, i, j, [&](int ey, int ex) { return v[ey][ex]; },
           [&](int ey, int ex) { return u[ey][ex]; });
      });
}

// ---- the aggregation family by spans of k (version 3, not a default: kernels/deepmatch.h) ----
// ncu found the per-element kernels bound by instruction issue (above): per output they decode
// the flat index (three FastDivs), test the grid and form four addresses, more instructions
// than the four loads and the store they serve. Here a work item owns kDmSpan outputs of one
// point, at offsets k = t + u S (u < kDmSpan, k < K^2, S = ceil(K^2 / kDmSpan)): it decodes its
// point and tests its 2 x 2 neighbours once, loads all of them (4 kDmSpan values) before its
// first store, and per output has an add and a compare left. Neighbouring items are
// neighbouring t, so loads and stores stay coalesced. Each output is the per-element
// expression (dm_agg_mean, ...) in its order: the same bits as versions 1 and 2.
// Items: N H W S.
constexpr int kDmSpan = 4;

template <typename I>
struct DmSpans {
  I span = 1;          // S
  FastDivOf<I> fspan;  // by S (set with the size)
  struct Where {
    I point, t;
  };
  CVG_HD Where where(I l) const {
    const I point = fspan.div(l);
    return {point, l - point * span};
  }
};

// v[u][ey][ex] = x at (i + rows[ey], j + cols[ex]), offset t + u S, for the neighbours in the
// grid (entries outside are never read); base is element (point, t).
template <typename T, typename I>
CVG_HD void dm_span_load(const T* x, const DmAggGeom<I>& g, I span, I base, I i, I j, I t,
                         const I (&rows)[2], const I (&cols)[2], T (&v)[kDmSpan][2][2]) {
  const I kk = g.k * g.k;
  for (int ey = 0; ey < 2; ++ey) {
    if (!dm_in(i + rows[ey], g.h)) continue;
    for (int ex = 0; ex < 2; ++ex) {
      if (!dm_in(j + cols[ex], g.w)) continue;
      const T* src = x + base + (rows[ey] * g.w + cols[ex]) * kk;
      CVG_UNROLL
      for (int u = 0; u < kDmSpan; ++u)
        if (t + u * span < kk) v[u][ey][ex] = src[u * span];
    }
  }
}

// Item l's span: load(base, i, j, t) once, then body(e, i, j, u) per output u, e being its
// flat element.
template <typename I, typename Load, typename Body>
CVG_HD void dm_agg_span(I l, const DmAggGeom<I>& g, const DmSpans<I>& sp, Load&& load,
                        Body&& body) {
  const auto [point, t] = sp.where(l);
  const auto p = dm_grid(point, g.fh, g.fw);
  const I kk = g.k * g.k, base = point * kk + t;
  load(base, p.i, p.j, t);
  CVG_UNROLL
  for (int u = 0; u < kDmSpan; ++u)
    if (t + u * sp.span < kk) body(base + u * sp.span, p.i, p.j, u);
}

// Item l's span over x, as dm_walk over a run (a span needs no direction: Up is unused).
template <bool Up, typename T, typename I, typename Fn>
CVG_HD void dm_walk(const T* x, const DmAggGeom<I>& g, const DmSpans<I>& sp, I l,
                    const I (&sh)[2], T fill, Fn&& fn) {
  T v[kDmSpan][2][2];
  dm_fill(v, fill);
  dm_agg_span(
      l, g, sp,
      [&](I base, I i, I j, I t) { dm_span_load(x, g, sp.span, base, i, j, t, sh, sh, v); },
      [&](I e, I i, I j, int u) { fn(e, i, j, [&](int ey, int ex) { return v[u][ey][ex]; }); });
}

// The same over two tensors of one shape: fn(e, i, j, at_x, at_y).
template <bool Up, typename T, typename U, typename I, typename Fn>
CVG_HD void dm_walk2(const T* x, const U* y, const DmAggGeom<I>& g, const DmSpans<I>& sp, I l,
                     const I (&sh)[2], T fill_x, U fill_y, Fn&& fn) {
  T v[kDmSpan][2][2];
  U w[kDmSpan][2][2];
  dm_fill(v, fill_x);
  dm_fill(w, fill_y);
  dm_agg_span(
      l, g, sp,
      [&](I base, I i, I j, I t) {
        dm_span_load(x, g, sp.span, base, i, j, t, sh, sh, v);
        dm_span_load(y, g, sp.span, base, i, j, t, sh, sh, w);
      },
      [&](I e, I i, I j, int u) {
        fn(e, i, j, [&](int ey, int ex) { return v[u][ey][ex]; },
           [&](int ey, int ex) { return w[u][ey][ex]; });
      });
}

// ---- the aggregation family by walkers: W = DmAggRuns (versions 2, 4) or DmSpans (version 3)
// Each output is the per-element functor's expression (dm_agg_mean, ...) on the walker's
// registers, with the same fills outside the grid: the same bits.
template <typename T, typename I, typename W>
struct DmAggForwardBy {
  const T* s;
  DmAggGeom<I> g;
  W w;
  T* out;
  CVG_HD void operator()(I l) const {
    const I sh[2] = {g.lo, g.hi};
    dm_walk<true>(s, g, w, l, sh, T(0), [&](I e, I i, I j, auto&& at) {
      out[e] = dm_agg_mean<T>(g.children(i, g.h) * g.children(j, g.w), at);
    });
  }
};

template <typename T, typename I, typename W>
struct DmAggBackwardBy {
  const T* grad;
  DmAggGeom<I> g;
  W w;
  T* out;
  CVG_HD void operator()(I l) const {
    const I sh[2] = {-g.lo, -g.hi};
    dm_walk<false>(grad, g, w, l, sh, T(0), [&](I e, I i, I j, auto&& at) {
      out[e] = dm_agg_spread<T>(
          at, [&](int ey) { return g.children(i + sh[ey], g.h); },
          [&](int ex) { return g.children(j + sh[ex], g.w); });
    });
  }
};

// The runs' backward takes its parents' child counts from registers too: per run 2 row counts
// and Run + 1 column counts (a column's count serves the two outputs that share it),
// instead of the 8 that dm_agg_spread works out per output; ncu found this kernel issue-bound
// (88 % SM, 32 % DRAM throughput on an H100). The same counts in the same expression: the same
// bits as the other versions.
template <typename T, typename I, int Run>
struct DmAggBackwardBy<T, I, DmAggRuns<I, Run>> {
  const T* grad;
  DmAggGeom<I> g;
  DmAggRuns<I, Run> w;
  T* out;
  CVG_HD void operator()(I l) const {
    const I sh[2] = {-g.lo, -g.hi};
    T c[2][Run + 1] = {};
    I rows[2] = {}, cols[Run + 1] = {};
    dm_agg_run(
        l, g, w,
        [&](I row, I i, I j0, I k, I n) {
          dm_run_load<false>(grad, g, row, i, j0, k, n, w.delta, sh, sh, c);
          const I lo = sh[1];  // the smaller shift: -hi
          CVG_UNROLL
          for (int ey = 0; ey < 2; ++ey) rows[ey] = g.children(i + sh[ey], g.h);
          CVG_UNROLL
          for (int u = 0; u <= Run; ++u) cols[u] = g.children(j0 + lo + u * w.delta, g.w);
        },
        [&](I e, I, I, int m) {
          T v[2][2];
          dm_quad<false>(c, m, v);
          const I col0 = cols[m + 1], col1 = cols[m];  // corner ex = 0 is the larger column
          out[e] = dm_agg_spread<T>(
              [&](int ey, int ex) { return v[ey][ex]; }, [&](int ey) { return rows[ey]; },
              [&](int ex) { return ex == 0 ? col0 : col1; });
        });
  }
};

template <typename T, typename I, typename W>
struct DmDisaggForwardBy {
  const T* q;
  DmAggGeom<I> g;
  W w;
  T* out;
  uint8_t* sw;
  CVG_HD void operator()(I l) const {
    const I sh[2] = {-g.lo, -g.hi};
    dm_walk<false>(q, g, w, l, sh, dm_neg_inf<T>(), [&](I e, I, I, auto&& at) {
      uint8_t e_best;
      out[e] = dm_disagg_best<T>(at, e_best);
      sw[e] = e_best;
    });
  }
};

// The gradient is loaded with its switch, used where they match.
template <typename T, typename I, typename W>
struct DmDisaggBackwardBy {
  const T* grad;
  const uint8_t* sw;
  DmAggGeom<I> g;
  W w;
  T* out;
  CVG_HD void operator()(I l) const {
    const I sh[2] = {g.lo, g.hi};
    dm_walk2<true>(grad, sw, g, w, l, sh, T(0), kDmNoParent,
                   [&](I e, I, I, auto&& at, auto&& sw_at) {
                     out[e] = dm_disagg_route<T>(sw_at, at);
                   });
  }
};

template <typename T, typename I>
using DmAggForwardRun = DmAggForwardBy<T, I, DmAggRuns<I>>;
template <typename T, typename I>
using DmAggBackwardRun = DmAggBackwardBy<T, I, DmAggRuns<I>>;
template <typename T, typename I>
using DmDisaggForwardRun = DmDisaggForwardBy<T, I, DmAggRuns<I>>;
template <typename T, typename I>
using DmDisaggBackwardRun = DmDisaggBackwardBy<T, I, DmAggRuns<I>>;
template <typename T, typename I>
using DmAggForwardRun4 = DmAggForwardBy<T, I, DmAggRuns<I, kDmAggShortRun>>;
template <typename T, typename I>
using DmAggBackwardRun4 = DmAggBackwardBy<T, I, DmAggRuns<I, kDmAggShortRun>>;
template <typename T, typename I>
using DmDisaggForwardRun4 = DmDisaggForwardBy<T, I, DmAggRuns<I, kDmAggShortRun>>;
template <typename T, typename I>
using DmDisaggBackwardRun4 = DmDisaggBackwardBy<T, I, DmAggRuns<I, kDmAggShortRun>>;
template <typename T, typename I>
using DmAggForwardSpan = DmAggForwardBy<T, I, DmSpans<I>>;
template <typename T, typename I>
using DmAggBackwardSpan = DmAggBackwardBy<T, I, DmSpans<I>>;
template <typename T, typename I>
using DmDisaggForwardSpan = DmDisaggForwardBy<T, I, DmSpans<I>>;
template <typename T, typename I>
using DmDisaggBackwardSpan = DmDisaggBackwardBy<T, I, DmSpans<I>>;

}  // namespace cvg
