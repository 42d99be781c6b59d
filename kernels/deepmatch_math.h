#pragma once
// Per-element math of the Deep Matching 4-D layers, shared by deepmatch_cpu.cpp and
// deepmatch_cuda.cu (conventions in kernels/deepmatch.h). Every kernel is a functor with
//     CVG_HD void operator()(I l) const
// that writes work item l of its output(s) and nothing else (item = element, except for the
// correlation's gradients: 8 channels of one site), so the CPU runs it under parallel_for and
// CUDA under a grid-stride loop, with the same sums in the same order on both.
//
// Score tensors are contiguous N x H x W x K x K. "point" is the flat reference index
// (n * H + i) * W + j, and element l of a score tensor is point * K * K + ky * K + kx.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/fast_div.h"
#include "core/hd.h"

namespace cvg {

// Index type I: int32_t when every tensor of the launch holds fewer than 2^31 elements, else
// int64_t (kernels/deepmatch.cpp picks it; core/fast_div.h says why 32 bits matter on a GPU).
// Every flat index, size and intermediate of the functors below is an I.

// Floor and ceiling of a / b for any sign of a (b >= 1).
template <typename I>
CVG_HD I dm_floor_div(std::type_identity_t<I> a, const FastDivOf<I>& b) {
  return a >= 0 ? b.div(a) : -b.div(-a + b.divisor() - 1);
}
template <typename I>
CVG_HD I dm_ceil_div(std::type_identity_t<I> a, const FastDivOf<I>& b) {
  return -dm_floor_div<I>(-a, b);
}

template <typename I>
CVG_HD bool dm_in(I v, std::type_identity_t<I> n) {
  return v >= 0 && v < n;
}

// Element l of an N x H x W x K x K score tensor as (point, k) with k = ky K + kx, and a point
// as (n, i, j). Every kernel decodes its flat index through FastDivs made once per launch
// (kernels/deepmatch.cpp), not through divisions (see core/fast_div.h for why).
template <typename I>
struct DmPlaneIndex {
  I point, k;
};
template <typename I>
CVG_HD DmPlaneIndex<I> dm_split(std::type_identity_t<I> l, const FastDivOf<I>& kk) {
  const I point = kk.div(l);
  return {point, l - point * kk.divisor()};
}
template <typename I>
struct DmGridIndex {
  I n, i, j;
};
template <typename I>
CVG_HD DmGridIndex<I> dm_grid(std::type_identity_t<I> point, const FastDivOf<I>& h,
                              const FastDivOf<I>& w) {
  const I row = w.div(point), n = h.div(row);
  return {n, row - n * h.divisor(), point - row * w.divisor()};
}

template <typename T>
CVG_HD T dm_neg_inf() {
  return -static_cast<T>(INFINITY);
}

// A beats the running best: strictly larger, or the first NaN (written without isnan so that
// host and device share the line). The first maximum wins ties.
template <typename T>
CVG_HD bool dm_beats(T v, T best) {
  return v > best || (v != v && best == best);
}

// ---- correlation --------------------------------------------------------------------------
// Reference point (i, j) sits at target pixel (stride * i + offset, stride * j + offset); offset
// index (ky, kx) looks at target pixel (y, x) = that + (ky - R, kx - R).
template <typename I>
struct DmCorrGeom {
  I n = 0, d = 0;    // batch, descriptor channels
  I h = 0, w = 0;    // reference grid
  I ht = 0, wt = 0;  // target map
  I r = 0, k = 1;    // radius and K = 2R + 1
  I stride = 1, offset = 0;
  // Dividers by k, k^2, h, w, ht, wt, stride and the channel blocks of the gradients (set with
  // the sizes, kernels/deepmatch.cpp).
  FastDivOf<I> fk, fkk, fh, fw, fht, fwt, fstride, fblocks;
};

template <typename T, typename I>
struct DmCorrForward {
  const T* ref;   // N x d x H x W
  const T* tgt;   // N x d x Ht x Wt
  DmCorrGeom<I> g;
  T* out;         // N x H x W x K x K
  CVG_HD void operator()(I l) const {
    const auto e = dm_split(l, g.fkk);
    const I ky = g.fk.div(e.k), kx = e.k - ky * g.k;
    const auto [n, i, j] = dm_grid(e.point, g.fh, g.fw);
    const I y = g.stride * i + g.offset + ky - g.r, x = g.stride * j + g.offset + kx - g.r;
    T acc = T(0);
    if (dm_in(y, g.ht) && dm_in(x, g.wt)) {
      const I rp = g.h * g.w, tp = g.ht * g.wt;
      const T* a = ref + n * g.d * rp + i * g.w + j;
      const T* b = tgt + n * g.d * tp + y * g.wt + x;
      for (I c = 0; c < g.d; ++c) acc += a[c * rp] * b[c * tp];
    }
    out[l] = acc;
  }
};

// The two correlation gradients give each work item kDmCorrChunk channels of one site (a
// reference point or a target pixel): the grad value of a term is loaded once and used for all
// of them (one item per channel loaded it d times). Item l is (n, b, site) with channel block
// b = c / kDmCorrChunk; each output is still the same sum in the same order.
constexpr int kDmCorrChunk = 8;
template <typename I>
CVG_HD I dm_corr_blocks(I d) { return (d + kDmCorrChunk - 1) / kDmCorrChunk; }

// The running sums of one item's channels (registers on the GPU: every loop is unrolled).
// Channel cc of a planar tensor lies cc * plane elements after channel 0.
template <typename T>
struct DmChannelSums {
  T s[kDmCorrChunk];
  int chunk;  // channels in use: kDmCorrChunk, or fewer in the last block
  template <typename I>
  CVG_HD explicit DmChannelSums(I used) : chunk(static_cast<int>(used)) {
    CVG_UNROLL
    for (int cc = 0; cc < kDmCorrChunk; ++cc) s[cc] = T(0);
  }
  template <typename I>
  CVG_HD void add(T v, const T* p, I plane) {
    CVG_UNROLL
    for (int cc = 0; cc < kDmCorrChunk; ++cc)
      if (cc < chunk) s[cc] += v * p[cc * plane];
  }
  template <typename I>
  CVG_HD void store(T* o, I plane) const {
    CVG_UNROLL
    for (int cc = 0; cc < kDmCorrChunk; ++cc)
      if (cc < chunk) o[cc * plane] = s[cc];
  }
};

// d ref[n, c, i, j] = sum_k grad[n, i, j, k] * tgt[n, c, p + k - R] over in-target k.
// Items: N x blocks x H x W (the CUDA side has its own kernel, one block per point).
template <typename T, typename I>
struct DmCorrGradRef {
  const T* grad;  // N x H x W x K x K
  const T* tgt;   // N x d x Ht x Wt
  DmCorrGeom<I> g;
  T* out;         // N x d x H x W
  CVG_HD void operator()(I l) const {
    const auto [nb, i, j] = dm_grid(l, g.fh, g.fw);  // nb = n blocks + b
    const I n = g.fblocks.div(nb), c0 = (nb - n * dm_corr_blocks(g.d)) * kDmCorrChunk;
    const I chunk = g.d - c0 < kDmCorrChunk ? g.d - c0 : kDmCorrChunk, plane = g.ht * g.wt;
    const I y0 = g.stride * i + g.offset - g.r, x0 = g.stride * j + g.offset - g.r;
    const T* gp = grad + ((n * g.h + i) * g.w + j) * g.k * g.k;
    const T* b = tgt + (n * g.d + c0) * plane;
    DmChannelSums<T> acc(chunk);
    for (I ky = 0; ky < g.k; ++ky) {
      const I y = y0 + ky;
      if (!dm_in(y, g.ht)) continue;
      for (I kx = 0; kx < g.k; ++kx) {
        const I x = x0 + kx;
        if (!dm_in(x, g.wt)) continue;
        acc.add(gp[ky * g.k + kx], b + y * g.wt + x, plane);
      }
    }
    acc.store(out + ((n * g.d + c0) * g.h + i) * g.w + j, g.h * g.w);
  }
};

// d tgt[n, c, y, x] = sum over the references i whose window holds (y, x) of
// grad[n, i, (y, x) - p_i + R] * ref[n, c, i]: a gather over at most ceil(K / stride)^2 points,
// so every target element has one writer (no atomics). Items: N x blocks x Ht x Wt.
template <typename T, typename I>
struct DmCorrGradTarget {
  const T* grad;  // N x H x W x K x K
  const T* ref;   // N x d x H x W
  DmCorrGeom<I> g;
  T* out;         // N x d x Ht x Wt
  CVG_HD void operator()(I l) const {
    const auto [nb, y, x] = dm_grid(l, g.fht, g.fwt);  // nb = n blocks + b
    const I n = g.fblocks.div(nb), c0 = (nb - n * dm_corr_blocks(g.d)) * kDmCorrChunk;
    const I chunk = g.d - c0 < kDmCorrChunk ? g.d - c0 : kDmCorrChunk, rp = g.h * g.w;
    // stride * i + offset in [y - R, y + R].
    I ilo = dm_ceil_div(y - g.r - g.offset, g.fstride),
            ihi = dm_floor_div(y + g.r - g.offset, g.fstride);
    I jlo = dm_ceil_div(x - g.r - g.offset, g.fstride),
            jhi = dm_floor_div(x + g.r - g.offset, g.fstride);
    ilo = ilo < 0 ? 0 : ilo;
    jlo = jlo < 0 ? 0 : jlo;
    ihi = ihi >= g.h ? g.h - 1 : ihi;
    jhi = jhi >= g.w ? g.w - 1 : jhi;
    DmChannelSums<T> acc(chunk);
    const T* a = ref + (n * g.d + c0) * rp;
    // Walking j by one moves grad by a point (K^2) and kx by -stride; pointers instead of the
    // full index per term (the same terms in the same order).
    const I step = g.k * g.k - g.stride, kx_lo = x - (g.stride * jlo + g.offset) + g.r;
    for (I i = ilo; i <= ihi; ++i) {
      const I ky = y - (g.stride * i + g.offset) + g.r;
      const T* gp = grad + (((n * g.h + i) * g.w + jlo) * g.k + ky) * g.k + kx_lo;
      const T* ap = a + i * g.w + jlo;
      for (I j = jlo; j <= jhi; ++j, gp += step, ++ap) acc.add(*gp, ap, rp);
    }
    acc.store(out + ((n * g.d + c0) * g.ht + y) * g.wt + x, g.ht * g.wt);
  }
};

// ---- max pooling over q with switches -----------------------------------------------------
// Coarse offset (cy, cx) pools the fine offsets 2 c - pad + {0, 1, 2} per axis; the switch is
// the window-local index 3 * dy + dx (0..8) of the winner.
template <typename I>
struct DmPoolGeom {
  I points = 0;  // N * H * W
  I k = 1;       // fine K
  I kc = 1;      // coarse K
  I pad = 1;
  FastDivOf<I> fk, fkk, fkc, fkkc;  // by k, k^2, kc, kc^2 (set with the sizes)

  CVG_HD I fine_of(I c, I t) const { return 2 * c - pad + t; }
  // The coarse c whose window holds fine f: 2 c - pad <= f <= 2 c - pad + 2, so c runs from
  // ceil((f + pad - 2) / 2) to floor((f + pad) / 2) (>> 1 is floor(/ 2), also below 0, in C++20).
  CVG_HD I cover_lo(I f) const {
    const I lo = (f + pad - 1) >> 1;
    return lo < 0 ? 0 : lo;
  }
  CVG_HD I cover_hi(I f) const {
    const I hi = (f + pad) >> 1;
    return hi >= kc ? kc - 1 : hi;
  }
};

template <typename T, typename I>
struct DmPoolForward {
  const T* s;  // fine
  DmPoolGeom<I> g;
  T* out;       // coarse
  uint8_t* sw;  // coarse
  CVG_HD void operator()(I l) const {
    const auto [point, c] = dm_split(l, g.fkkc);
    const I cy = g.fkc.div(c), cx = c - cy * g.kc;
    const T* plane = s + point * g.k * g.k;
    bool have = false;
    T best = T(0);
    int best_t = 0;
    for (int ty = 0; ty < 3; ++ty) {
      const I fy = g.fine_of(cy, ty);
      if (!dm_in(fy, g.k)) continue;
      for (int tx = 0; tx < 3; ++tx) {
        const I fx = g.fine_of(cx, tx);
        if (!dm_in(fx, g.k)) continue;
        const T v = plane[fy * g.k + fx];
        if (!have || dm_beats(v, best)) {
          have = true;
          best = v;
          best_t = 3 * ty + tx;
        }
      }
    }
    out[l] = best;
    sw[l] = static_cast<uint8_t>(best_t);
  }
};

// Fine element (fy, fx) of the fine plane that coarse (cy, cx) with switch t points at.
template <typename I>
CVG_HD I dm_pool_target(const DmPoolGeom<I>& g, I cy, I cx, int t) {
  return g.fine_of(cy, t / 3) * g.k + g.fine_of(cx, t % 3);
}

// d S_l: each fine element sums the gradient of the (at most 2 x 2) coarse windows whose switch
// names it, in increasing coarse order.
template <typename T, typename I>
struct DmPoolBackward {
  const T* grad;       // coarse
  const uint8_t* sw;   // coarse
  DmPoolGeom<I> g;
  T* out;              // fine
  CVG_HD void operator()(I l) const {
    const auto [point, f] = dm_split(l, g.fkk);
    const I fy = g.fk.div(f), fx = f - fy * g.k;
    const I base = point * g.kc * g.kc;
    T acc = T(0);
    for (I cy = g.cover_lo(fy); cy <= g.cover_hi(fy); ++cy)
      for (I cx = g.cover_lo(fx); cx <= g.cover_hi(fx); ++cx) {
        const I c = base + cy * g.kc + cx;
        if (dm_pool_target(g, cy, cx, sw[c]) == f) acc += grad[c];
      }
    out[l] = acc;
  }
};

// Coarse element takes the fine value its switch names (the adjoint of DmPoolBackward).
template <typename T, typename I>
struct DmPoolGather {
  const T* x;          // fine
  const uint8_t* sw;   // coarse
  DmPoolGeom<I> g;
  T* out;              // coarse
  CVG_HD void operator()(I l) const {
    const auto [point, c] = dm_split(l, g.fkkc);
    const I cy = g.fkc.div(c), cx = c - cy * g.kc;
    out[l] = x[point * g.k * g.k + dm_pool_target(g, cy, cx, sw[l])];
  }
};

// ---- unpooling through the switches + skip sum --------------------------------------------
// The coarse index (flat within the point's coarse plane) that fills fine (fy, fx): among the
// coarse windows whose switch names it, the one with the largest value, the first in row-major
// coarse order on ties; -1 when none names it or all candidates are -inf.
template <typename T, typename I>
CVG_HD I dm_unpool_winner(const T* coarse_plane, const uint8_t* sw_plane,
                                const DmPoolGeom<I>& g, I fy, I fx) {
  I win = -1;
  T best = dm_neg_inf<T>();
  for (I cy = g.cover_lo(fy); cy <= g.cover_hi(fy); ++cy)
    for (I cx = g.cover_lo(fx); cx <= g.cover_hi(fx); ++cx) {
      const I c = cy * g.kc + cx;
      if (dm_pool_target(g, cy, cx, sw_plane[c]) != fy * g.k + fx) continue;
      if (dm_beats(coarse_plane[c], best)) {
        best = coarse_plane[c];
        win = c;
      }
    }
  return win;
}

// Q_l = S_l + unpool(Q_{l+1/2}); -inf where no switch names the element.
template <typename T, typename I>
struct DmUnpoolForward {
  const T* qh;         // coarse
  const uint8_t* sw;   // coarse
  const T* s;          // fine
  DmPoolGeom<I> g;
  T* out;              // fine
  CVG_HD void operator()(I l) const {
    const auto [point, f] = dm_split(l, g.fkk);
    const I fy = g.fk.div(f), fx = f - fy * g.k;
    const I cb = point * g.kc * g.kc;
    const I w = dm_unpool_winner(qh + cb, sw + cb, g, fy, fx);
    out[l] = s[l] + (w >= 0 ? qh[cb + w] : dm_neg_inf<T>());
  }
};

// d Q_{l+1/2}: a coarse element receives the gradient of the fine element it won (0 when it
// lost, or when it is -inf and so won nothing).
template <typename T, typename I>
struct DmUnpoolBackward {
  const T* grad;       // fine
  const T* qh;         // coarse
  const uint8_t* sw;   // coarse
  DmPoolGeom<I> g;
  T* out;              // coarse
  CVG_HD void operator()(I l) const {
    const auto [point, c] = dm_split(l, g.fkkc);
    const I cb = point * g.kc * g.kc, cy = g.fkc.div(c);
    const I f = dm_pool_target(g, cy, c - cy * g.kc, sw[l]);
    const I fy = g.fk.div(f);
    const I w = dm_unpool_winner(qh + cb, sw + cb, g, fy, f - fy * g.k);
    out[l] = w == c ? grad[point * g.k * g.k + f] : T(0);
  }
};

// Adjoint of DmUnpoolBackward: a fine element takes x at its winner, 0 when it has none.
template <typename T, typename I>
struct DmUnpoolAdjoint {
  const T* x;          // coarse
  const T* qh;         // coarse (decides the winners)
  const uint8_t* sw;   // coarse
  DmPoolGeom<I> g;
  T* out;              // fine
  CVG_HD void operator()(I l) const {
    const auto [point, f] = dm_split(l, g.fkk);
    const I fy = g.fk.div(f), fx = f - fy * g.k;
    const I cb = point * g.kc * g.kc;
    const I w = dm_unpool_winner(qh + cb, sw + cb, g, fy, fx);
    out[l] = w >= 0 ? x[cb + w] : T(0);
  }
};

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

// A[i, k] = mean over the in-grid children of S[child, k]; 0 for a point without children.
template <typename T, typename I>
struct DmAggForward {
  const T* s;
  DmAggGeom<I> g;
  T* out;
  CVG_HD void operator()(I l) const {
    const auto [i, j] = g.where(l);
    T acc = T(0);
    I cnt = 0;
    for (int ey = 0; ey < 2; ++ey) {
      const I ci = i + g.shift(ey);
      if (!dm_in(ci, g.h)) continue;
      for (int ex = 0; ex < 2; ++ex) {
        const I cj = j + g.shift(ex);
        if (!dm_in(cj, g.w)) continue;
        acc += s[g.moved(l, g.shift(ey), g.shift(ex))];
        ++cnt;
      }
    }
    out[l] = cnt > 0 ? acc / static_cast<T>(cnt) : T(0);
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
    T acc = T(0);
    for (int ey = 0; ey < 2; ++ey) {
      const I pi = i - g.shift(ey);
      if (!dm_in(pi, g.h)) continue;
      for (int ex = 0; ex < 2; ++ex) {
        const I pj = j - g.shift(ex);
        if (!dm_in(pj, g.w)) continue;
        const I cnt = g.children(pi, g.h) * g.children(pj, g.w);
        acc += grad[g.moved(l, -g.shift(ey), -g.shift(ex))] / static_cast<T>(cnt);
      }
    }
    out[l] = acc;
  }
};

constexpr uint8_t kDmNoParent = 0xFF;

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
    T best = dm_neg_inf<T>();
    uint8_t e_best = kDmNoParent;
    for (int e = 0; e < 4; ++e) {
      const I pi = i - g.shift(e / 2), pj = j - g.shift(e % 2);
      if (!dm_in(pi, g.h) || !dm_in(pj, g.w)) continue;
      const T v = q[g.moved(l, -g.shift(e / 2), -g.shift(e % 2))];
      if (dm_beats(v, best)) {
        best = v;
        e_best = static_cast<uint8_t>(e);
      }
    }
    out[l] = best;
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
    T acc = T(0);
    for (int e = 0; e < 4; ++e) {
      const I ci = i + g.shift(e / 2), cj = j + g.shift(e % 2);
      if (!dm_in(ci, g.h) || !dm_in(cj, g.w)) continue;
      const I c = g.moved(l, g.shift(e / 2), g.shift(e % 2));
      if (sw[c] == e) acc += grad[c];
    }
    out[l] = acc;
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

// ---- power --------------------------------------------------------------------------------
// y = A^nu = exp(nu ln A) for A > 0, and 0 for A <= 0 (the limit at 0 for nu > 0).
template <typename T>
CVG_HD T dm_pow(T a, T nu);
template <>
CVG_HD float dm_pow<float>(float a, float nu) {
  return a > 0.0f ? expf(nu * logf(a)) : 0.0f;
}
template <>
CVG_HD double dm_pow<double>(double a, double nu) {
  return a > 0.0 ? ::exp(nu * ::log(a)) : 0.0;
}

// Item l computes the elements l + u * quarter (u < kDmPowerSpan, those below n), loading all of
// them before the first store: a GPU thread then has kDmPowerSpan loads in flight instead of one
// (ilp_loop in core/cuda_launch.cuh says why that matters), and neighbouring items still read
// neighbouring elements. Items: quarter = ceil(n / kDmPowerSpan).
constexpr int kDmPowerSpan = 4;
template <typename T, typename I>
struct DmPowerForward {
  const T* a;
  const T* nu;  // one element
  T* out;
  I n, quarter;
  CVG_HD void operator()(I l) const {
    T v[kDmPowerSpan] = {};  // (GCC cannot see that the two guards agree)
    CVG_UNROLL
    for (int u = 0; u < kDmPowerSpan; ++u)
      if (l + u * quarter < n) v[u] = a[l + u * quarter];
    const T p = nu[0];
    CVG_UNROLL
    for (int u = 0; u < kDmPowerSpan; ++u)
      if (l + u * quarter < n) out[l + u * quarter] = dm_pow(v[u], p);
  }
};

// ---- structured hinge loss ----------------------------------------------------------------
// Per reference point: gt[point] = (gy, gx) offset indices of the ground truth. The point takes
// part when gt lies in [0, K)^2 and its score is finite; then each finite q contributes
//     max(0, 1 - exp(-|q - gt|^2 / (2 sigma^2)) + Q[q] - Q[gt])
// with |q - gt| measured in offset steps.
template <typename I>
struct DmHingeGeom {
  I points = 0, k = 1;
  double inv_two_sigma2 = 0.5;
  FastDivOf<I> fk, fkk;  // by k and k^2 (set with the sizes)
};

template <typename T, typename I>
CVG_HD T dm_hinge_term(const T* plane, const DmHingeGeom<I>& g, std::type_identity_t<I> gy,
                       std::type_identity_t<I> gx, std::type_identity_t<I> q) {
  const T v = plane[q];
  if (!(v > dm_neg_inf<T>())) return T(0);  // -inf (and NaN) scores never take part
  const I qy = g.fk.div(q);
  const T dy = static_cast<T>(qy - gy), dx = static_cast<T>(q - qy * g.k - gx);
  const T margin = T(1) - static_cast<T>(::exp(-static_cast<double>(dy * dy + dx * dx) *
                                                 g.inv_two_sigma2));
  const T t = margin + v - plane[gy * g.k + gx];
  return t > T(0) ? t : T(0);
}

// The ground-truth flat offset of a point, or -1 when the point does not take part.
template <typename T, typename I>
CVG_HD I dm_hinge_gt(const T* plane, const int32_t* gt, const DmHingeGeom<I>& g, I point) {
  const I gy = gt[2 * point], gx = gt[2 * point + 1];
  if (!dm_in(gy, g.k) || !dm_in(gx, g.k)) return -1;
  return plane[gy * g.k + gx] > dm_neg_inf<T>() ? gy * g.k + gx : -1;
}

// The hinge term of every score (0 for a point that does not take part): one thread per score,
// so the GPU runs all N H W K^2 terms in parallel (a loop over K^2 per point left most of it
// idle: 17.5 ms for 1024 points at K = 161 on an H100). The per-point losses are their sums.
template <typename T, typename I>
struct DmHingeTerms {
  const T* q;
  const int32_t* gt;
  DmHingeGeom<I> g;
  T* out;  // like q
  CVG_HD void operator()(I l) const {
    const auto [point, k] = dm_split(l, g.fkk);
    const T* plane = q + point * g.k * g.k;
    const I t = dm_hinge_gt(plane, gt, g, point);
    out[l] = t >= 0 ? dm_hinge_term(plane, g, gt[2 * point], gt[2 * point + 1], k) : T(0);
  }
};

// d loss(point) / d Q[point, q]: +1 for an active term's q (terms[l] > 0), minus the number of
// active terms of the point at the ground truth (whose own term is 0, never active).
// active_count: per point, the number of positive terms.
template <typename T, typename I>
struct DmHingeCoef {
  const T* q;
  const int32_t* gt;
  const T* terms;
  const T* active_count;
  DmHingeGeom<I> g;
  T* out;
  CVG_HD void operator()(I l) const {
    const auto [point, k] = dm_split(l, g.fkk);
    const I t = dm_hinge_gt(q + point * g.k * g.k, gt, g, point);
    T c = T(0);
    if (t >= 0) c = k == t ? -active_count[point] : (terms[l] > T(0) ? T(1) : T(0));
    out[l] = c;
  }
};

}  // namespace cvg
