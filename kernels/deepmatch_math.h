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
#include <limits>
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
template <typename I>
CVG_HD I dm_clamp(std::type_identity_t<I> v, std::type_identity_t<I> lo,
                  std::type_identity_t<I> hi) {
  return v < lo ? lo : v > hi ? hi : v;
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

// Channels per work item of the two correlation gradients (below).
constexpr int kDmCorrChunk = 8;
template <typename I>
CVG_HD I dm_corr_blocks(I d) { return (d + kDmCorrChunk - 1) / kDmCorrChunk; }

// The geometry of a correlation of N x d x H x W descriptors with an N x d x Ht x Wt target
// (host only: FastDivs are made on the host).
template <typename I>
DmCorrGeom<I> dm_corr_geom(int64_t n, int64_t d, int64_t h, int64_t w, int64_t ht, int64_t wt,
                           int64_t radius, int64_t stride, int64_t offset) {
  DmCorrGeom<I> g;
  g.n = n;
  g.d = d;
  g.h = h;
  g.w = w;
  g.ht = ht;
  g.wt = wt;
  g.r = radius;
  g.k = 2 * radius + 1;
  g.stride = stride;
  g.offset = offset;
  g.fk = FastDivOf<I>::for_size(g.k);
  g.fkk = FastDivOf<I>::for_size(g.k * g.k);
  g.fh = FastDivOf<I>::for_size(g.h);
  g.fw = FastDivOf<I>::for_size(g.w);
  g.fblocks = FastDivOf<I>::for_size(dm_corr_blocks(d));
  g.fht = FastDivOf<I>::for_size(g.ht);
  g.fwt = FastDivOf<I>::for_size(g.wt);
  g.fstride = FastDivOf<I>::for_size(stride);
  return g;
}

// The reference rows whose windows hold target row y (stride i + offset - r <= y <=
// stride i + offset + r, within the grid): lo .. lo + n - 1, n = 0 when none does.
template <typename I>
struct DmRowSpan {
  I lo, n;
};
template <typename I>
CVG_HD DmRowSpan<I> dm_rows_seeing(const DmCorrGeom<I>& g, I y) {
  I lo = dm_ceil_div(y - g.offset - g.r, g.fstride);
  I hi = dm_floor_div(y - g.offset + g.r, g.fstride);
  lo = lo < 0 ? 0 : lo;
  hi = hi >= g.h ? g.h - 1 : hi;
  return {lo, hi >= lo ? hi - lo + 1 : 0};
}

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

// The forward both devices run (DmCorrForward, one dot product per score read straight from
// the tensors, stays as the reference and as the GPU's fallback when the scratch below exceeds
// shared memory). Work is split into blocks, one per (n, target row y, tile of kDmCorrTileJ
// reference columns j0 ..): a block stages the `span` target columns its tile's windows reach
// in row y (d x span) and the descriptors of its points whose windows hold row y (at most
// ni_max reference rows, ni x d x kDmCorrTileJ) in a scratch buffer (shared memory on the GPU),
// then computes every score of those points in row y from the scratch. Each target value is
// then read from memory once per block and used for all kDmCorrTileJ points, and each thread
// keeps kDmCorrTileJ x kDmCorrTileU sums in registers (the tile's points at kDmCorrTileU
// columns), so a channel costs 4 + 8 scratch loads for 32 multiply-adds instead of 2 loads
// for 1. A column u of the scratch row is offset kx = u - stride jj of point jj: the sums of
// a column for points whose window misses it are computed and dropped (the band's waste:
// about stride (J - 1) / span of the work). Rows y outside the target map write zeros, and
// so do columns outside it, as DmCorrForward. Every sum runs over c in increasing order, as
// DmCorrForward's: the two give the same bits.
constexpr int kDmCorrTileJ = 8;  // reference columns per block
constexpr int kDmCorrTileU = 4;  // scratch columns per work item
template <typename I>
struct DmCorrTileGeom {
  I jtiles = 1;   // ceil(w / kDmCorrTileJ)
  I span = 1;     // target columns of a tile's windows: stride (kDmCorrTileJ - 1) + k
  I ustep = 1;    // ceil(span / kDmCorrTileU): an item's columns are u0 + m ustep
  I rows = 1;     // target rows the windows reach, ymin .. ymin + rows - 1: stride (h - 1) + k
  I ymin = 0;     // offset - r
  I ni_max = 1;   // most reference rows whose window holds one target row
  I tsize = 0;    // d span rounded up to a multiple of kDmCorrTileJ: where the descriptors start
  FastDivOf<I> fjtiles, frows, fspan, fustep, fd;  // set with the sizes
  // Scratch elements per block: the target row, then ni_max x d x kDmCorrTileJ descriptors.
  CVG_HD I scratch(I d) const { return tsize + ni_max * d * kDmCorrTileJ; }
};

// r = p[0 .. kDmCorrTileJ), p 16-byte aligned (the scratch starts aligned and tsize and each
// descriptor row are multiples of kDmCorrTileJ elements). On the GPU as 128-bit loads: 2
// (float) or 4 (double) shared-memory loads instead of 8, each a broadcast, since the threads
// of a warp read one or two reference rows.
static_assert(kDmCorrTileJ % 4 == 0, "dm_load_tile reads kDmCorrTileJ in 128-bit pieces");
#ifdef __CUDACC__
CVG_HD void dm_load_tile_vec(const float* p, float (&r)[kDmCorrTileJ]) {
  CVG_UNROLL
  for (int q = 0; q < kDmCorrTileJ / 4; ++q) {
    const float4 v = reinterpret_cast<const float4*>(p)[q];
    r[4 * q] = v.x;
    r[4 * q + 1] = v.y;
    r[4 * q + 2] = v.z;
    r[4 * q + 3] = v.w;
  }
}
CVG_HD void dm_load_tile_vec(const double* p, double (&r)[kDmCorrTileJ]) {
  CVG_UNROLL
  for (int q = 0; q < kDmCorrTileJ / 2; ++q) {
    const double2 v = reinterpret_cast<const double2*>(p)[q];
    r[2 * q] = v.x;
    r[2 * q + 1] = v.y;
  }
}
#endif
template <typename T>
CVG_HD void dm_load_tile(const T* p, T (&r)[kDmCorrTileJ]) {
#ifdef __CUDA_ARCH__
  dm_load_tile_vec(p, r);
#else
  CVG_UNROLL
  for (int jj = 0; jj < kDmCorrTileJ; ++jj) r[jj] = p[jj];
#endif
}

template <typename I>
DmCorrTileGeom<I> dm_corr_tile_geom(const DmCorrGeom<I>& g) {
  DmCorrTileGeom<I> t;
  t.jtiles = (g.w + kDmCorrTileJ - 1) / kDmCorrTileJ;
  t.span = g.stride * (kDmCorrTileJ - 1) + g.k;
  t.ustep = (t.span + kDmCorrTileU - 1) / kDmCorrTileU;
  t.rows = g.h > 0 ? g.stride * (g.h - 1) + g.k : 0;
  t.ymin = g.offset - g.r;
  t.ni_max = g.h < 2 * g.r / g.stride + 1 ? g.h : 2 * g.r / g.stride + 1;
  t.tsize = (g.d * t.span + kDmCorrTileJ - 1) / kDmCorrTileJ * kDmCorrTileJ;
  t.fjtiles = FastDivOf<I>::for_size(t.jtiles);
  t.frows = FastDivOf<I>::for_size(t.rows);
  t.fspan = FastDivOf<I>::for_size(t.span);
  t.fustep = FastDivOf<I>::for_size(t.ustep);
  t.fd = FastDivOf<I>::for_size(g.d);
  return t;
}

template <typename T, typename I>
struct DmCorrTiled {
  const T* ref;   // N x d x H x W
  const T* tgt;   // N x d x Ht x Wt
  DmCorrGeom<I> g;
  DmCorrTileGeom<I> t;
  T* out;         // N x H x W x K x K

  struct Block {
    I n, y, j0, xs;  // image, target row, first reference column, target column of scratch 0
    I ilo, ni;       // reference rows ilo .. ilo + ni - 1 see row y (ni may be 0)
    bool live;       // y lies in the target map
  };
  // Blocks: N x rows x jtiles, the tile fastest.
  CVG_HD Block block(I b) const {
    const I rest = t.fjtiles.div(b), n = t.frows.div(rest);
    Block k;
    k.n = n;
    k.y = t.ymin + rest - n * t.rows;
    k.j0 = (b - rest * t.jtiles) * kDmCorrTileJ;
    k.xs = g.stride * k.j0 + g.offset - g.r;
    const DmRowSpan<I> rows = dm_rows_seeing(g, k.y);
    k.ilo = rows.lo;
    k.ni = rows.n;
    k.live = dm_in(k.y, g.ht);
    return k;
  }
  CVG_HD I target_items(const Block& b) const { return b.live ? g.d * t.span : 0; }
  CVG_HD I ref_items(const Block& b) const { return b.live ? b.ni * g.d * kDmCorrTileJ : 0; }
  CVG_HD I compute_items(const Block& b) const { return b.ni * t.ustep; }

  // scratch[c span + u] = target[n, c, y, xs + u], 0 outside the map.
  CVG_HD void load_target(const Block& b, I item, T* scratch) const {
    const I c = t.fspan.div(item), x = b.xs + item - c * t.span;
    scratch[item] = dm_in(x, g.wt) ? tgt[((b.n * g.d + c) * g.ht + b.y) * g.wt + x] : T(0);
  }
  // The same for all items, row by row (host only: the CPU's loop, without a division per item).
  void load_target_rows(const Block& b, T* scratch) const {
    if (!b.live) return;
    const I lo = b.xs < 0 ? -b.xs : 0, hi = g.wt - b.xs < t.span ? g.wt - b.xs : t.span;
    for (I c = 0; c < g.d; ++c) {
      T* row = scratch + c * t.span;
      const T* src = tgt + ((b.n * g.d + c) * g.ht + b.y) * g.wt;
      for (I u = 0; u < t.span; ++u) row[u] = u >= lo && u < hi ? src[b.xs + u] : T(0);
    }
  }
  // scratch[tsize + (il d + c) J + jj] = ref[n, c, ilo + il, j0 + jj], 0 past the grid.
  CVG_HD void load_ref(const Block& b, I item, T* scratch) const {
    const I q = item / kDmCorrTileJ, jj = item - q * kDmCorrTileJ;
    const I il = t.fd.div(q), c = q - il * g.d, j = b.j0 + jj;
    scratch[t.tsize + item] =
        j < g.w ? ref[((b.n * g.d + c) * g.h + b.ilo + il) * g.w + j] : T(0);
  }
  // Item (il, u0): the scores of reference row ilo + il at columns u0 + m ustep, for the tile's
  // points jj whose window holds them (kx = u - stride jj in [0, k)).
  CVG_HD void compute(const Block& b, I item, const T* scratch) const {
    const I il = t.fustep.div(item), u0 = item - il * t.ustep;
    T acc[kDmCorrTileU][kDmCorrTileJ] = {};
    if (b.live) {
      I col[kDmCorrTileU];  // clamped into the row: the sums of columns past it are dropped
      CVG_UNROLL
      for (int m = 0; m < kDmCorrTileU; ++m) {
        const I u = u0 + m * t.ustep;
        col[m] = u < t.span ? u : t.span - 1;
      }
      const T* rs = scratch + t.tsize + il * g.d * kDmCorrTileJ;
      for (I c = 0; c < g.d; ++c, rs += kDmCorrTileJ) {
        T r[kDmCorrTileJ], v[kDmCorrTileU];
        dm_load_tile(rs, r);
        CVG_UNROLL
        for (int m = 0; m < kDmCorrTileU; ++m) v[m] = scratch[c * t.span + col[m]];
        CVG_UNROLL
        for (int m = 0; m < kDmCorrTileU; ++m)
          CVG_UNROLL
          for (int jj = 0; jj < kDmCorrTileJ; ++jj) acc[m][jj] += r[jj] * v[m];
      }
    }
    const I i = b.ilo + il, ky = b.y - (g.stride * i + g.offset - g.r);
    T* row = out + (((b.n * g.h + i) * g.w + b.j0) * g.k + ky) * g.k;  // point j0, offset (ky, 0)
    CVG_UNROLL
    for (int m = 0; m < kDmCorrTileU; ++m) {
      const I u = u0 + m * t.ustep;
      if (u >= t.span) continue;
      const bool in = b.live && dm_in(b.xs + u, g.wt);
      CVG_UNROLL
      for (int jj = 0; jj < kDmCorrTileJ; ++jj) {
        const I kx = u - g.stride * jj;
        if (b.j0 + jj < g.w && kx >= 0 && kx < g.k)
          row[jj * g.k * g.k + kx] = in ? acc[m][jj] : T(0);
      }
    }
  }
  // The CPU's form of the same dot products (host only): the k scores of point jj of reference
  // row ilo + il in row y, as d scaled scratch rows added into k running sums (acc: k
  // elements), which vectorises over kx and computes no score outside the point's window. Every
  // sum still runs over c in increasing order: the same bits as compute().
  void compute_row(const Block& b, I il, int jj, const T* scratch, T* acc) const {
    const I j = b.j0 + jj, i = b.ilo + il, ky = b.y - (g.stride * i + g.offset - g.r);
    if (j >= g.w) return;
    T* row = out + (((b.n * g.h + i) * g.w + j) * g.k + ky) * g.k;
    for (I kx = 0; kx < g.k; ++kx) acc[kx] = T(0);
    if (b.live) {
      const T* rs = scratch + t.tsize + il * g.d * kDmCorrTileJ + jj;
      const T* ts = scratch + g.stride * jj;
      // Blocks of kBlock sums stay in registers over all d channels (one load per multiply-add
      // instead of a load and a store of the running sum too); the tail as before.
      constexpr int kBlock = 16;
      I kx0 = 0;
      for (; kx0 + kBlock <= g.k; kx0 += kBlock) {
        T a[kBlock] = {};
        for (I c = 0; c < g.d; ++c) {
          const T r = rs[c * kDmCorrTileJ];
          const T* tc = ts + c * t.span + kx0;
          for (int u = 0; u < kBlock; ++u) a[u] += r * tc[u];
        }
        for (int u = 0; u < kBlock; ++u) acc[kx0 + u] = a[u];
      }
      for (I c = 0; c < g.d; ++c) {
        const T r = rs[c * kDmCorrTileJ];
        const T* tc = ts + c * t.span;
        for (I kx = kx0; kx < g.k; ++kx) acc[kx] += r * tc[kx];
      }
    }
    const I x0 = b.xs + g.stride * jj;
    for (I kx = 0; kx < g.k; ++kx) row[kx] = b.live && dm_in(x0 + kx, g.wt) ? acc[kx] : T(0);
  }
};

// The two correlation gradients give each work item kDmCorrChunk channels of one site (a
// reference point or a target pixel): the grad value of a term is loaded once and used for all
// of them (one item per channel loaded it d times). Item l is (n, b, site) with channel block
// b = c / kDmCorrChunk (kDmCorrChunk and dm_corr_blocks: above, with the geometry); each output
// is still the same sum in the same order.
//
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

// d ref, tiled (version 2, not the default: kernels/deepmatch.h; DmCorrGradRef is, and runs when
// the scratch below exceeds shared memory). Work is split into blocks, one per (part p, pair n,
// reference row i, tile of kDmCorrTileJ reference columns j0 ..); part p owns the window rows ky in
// [p kDmGradRows, (p + 1) kDmGradRows) and writes its partial sums to partial[p], which a
// fixed-order sum over p then adds up (more, smaller blocks: a block's row loads overlap other
// blocks' arithmetic). For each window row ky whose target row y lies in the map, the block stages
// that row's `span` target columns (d rows of tstride, odd, so that threads reading different
// channels at one column hit different banks) and the tile's gradient values aligned to those
// columns (span x kDmCorrTileJ: entry (u, jj) is grad[.., ky, u - stride jj], 0 outside point jj's
// window or the map) in a scratch buffer; thread `tid` = (channel group cgi, slice sl) then adds,
// for every column u = sl + m slices, the products of 4 channels' target values and the 8 points'
// gradients into 32 running sums (4 + 2 128-bit scratch loads per 32 multiply-adds). At the end the
// slices' sums go through the scratch and are added in slice order. Sums run in (part, ky, slice,
// u) order: not DmCorrGradRef's order, so the two agree to rounding, not bitwise.
constexpr int kDmGradRows = 16;  // window rows per part
constexpr int kDmGradChan = 4;   // channels per thread
constexpr int kDmGradThreads = 256;
template <typename I>
struct DmGradRefTileGeom {
  I jtiles = 1;   // ceil(w / kDmCorrTileJ)
  I span = 1;     // stride (kDmCorrTileJ - 1) + k
  I tstride = 1;  // span rounded up to odd
  I parts = 1;    // ceil(k / kDmGradRows)
  I cg = 1;       // channel groups: ceil(d / kDmGradChan)
  I slices = 1;   // threads per channel group: kDmGradThreads / cg
  FastDivOf<I> fjtiles, fh, fn, ftstride, fcg;  // set with the sizes
  CVG_HD I threads() const { return cg * slices; }
  // Where the gradient values start: after the d target rows, at a multiple of kDmCorrTileJ
  // elements (dm_load_tile's alignment).
  CVG_HD I grad_at(I d) const {
    return (d * tstride + kDmCorrTileJ - 1) / kDmCorrTileJ * kDmCorrTileJ;
  }
  CVG_HD I row_items(I d) const { return grad_at(d) + span * kDmCorrTileJ; }
  // Scratch elements: one row's staging, or the slices' sums at the end, whichever is larger.
  CVG_HD I scratch(I d) const {
    const I sums = threads() * kDmGradChan * kDmCorrTileJ;
    return row_items(d) > sums ? row_items(d) : sums;
  }
};

// Blocks over (n, i, j-tile, part) with channel groups of 4 in at most kDmGradThreads threads:
// d up to 4 kDmGradThreads (larger d takes DmCorrGradRef).
template <typename I>
DmGradRefTileGeom<I> dm_grad_ref_tile_geom(const DmCorrGeom<I>& g) {
  DmGradRefTileGeom<I> t;
  t.jtiles = (g.w + kDmCorrTileJ - 1) / kDmCorrTileJ;
  t.span = g.stride * (kDmCorrTileJ - 1) + g.k;
  t.tstride = t.span | 1;
  t.parts = (g.k + kDmGradRows - 1) / kDmGradRows;
  t.cg = (g.d + kDmGradChan - 1) / kDmGradChan;
  t.slices = t.cg >= 1 && t.cg <= kDmGradThreads ? kDmGradThreads / t.cg : 1;
  t.fjtiles = FastDivOf<I>::for_size(t.jtiles);
  t.fh = FastDivOf<I>::for_size(g.h);
  t.fn = FastDivOf<I>::for_size(g.n);
  t.ftstride = FastDivOf<I>::for_size(t.tstride);
  t.fcg = FastDivOf<I>::for_size(t.cg);
  return t;
}

template <typename T, typename I>
struct DmCorrGradRefTiled {
  const T* grad;  // N x H x W x K x K
  const T* tgt;   // N x d x Ht x Wt
  DmCorrGeom<I> g;
  DmGradRefTileGeom<I> t;
  T* partial;     // parts x N x d x H x W

  struct Block {
    I p, n, i, j0, xs;  // part, pair, reference row, first column, target column of scratch 0
    I ky0, ky1;         // the part's window rows
  };
  struct Sums {
    T s[kDmGradChan][kDmCorrTileJ];  // channel cgi + m cg, point jj
  };
  // Blocks: parts x N x H x jtiles, the tile fastest.
  CVG_HD Block block(I b) const {
    Block k;
    const I row = t.fjtiles.div(b), pn = t.fh.div(row);
    k.j0 = (b - row * t.jtiles) * kDmCorrTileJ;
    k.i = row - pn * g.h;
    k.p = t.fn.div(pn);
    k.n = pn - k.p * g.n;
    k.xs = g.stride * k.j0 + g.offset - g.r;
    k.ky0 = k.p * kDmGradRows;
    k.ky1 = k.ky0 + kDmGradRows < g.k ? k.ky0 + kDmGradRows : g.k;
    return k;
  }
  CVG_HD I row_y(const Block& b, I ky) const { return g.stride * b.i + g.offset - g.r + ky; }
  // Window row ky's staging, item by item: target values, then the gradient values.
  CVG_HD void load_row(const Block& b, I ky, I item, T* scratch) const {
    const I y = row_y(b, ky), at = t.grad_at(g.d);
    if (item < at) {
      const I c = t.ftstride.div(item), u = item - c * t.tstride, x = b.xs + u;
      scratch[item] = c < g.d && u < t.span && dm_in(x, g.wt)
                          ? tgt[((b.n * g.d + c) * g.ht + y) * g.wt + x]
                          : T(0);
      return;
    }
    const I q = item - at, u = q / kDmCorrTileJ, jj = q - u * kDmCorrTileJ;
    const I j = b.j0 + jj, kx = u - g.stride * jj;
    scratch[item] = j < g.w && kx >= 0 && kx < g.k && dm_in(b.xs + u, g.wt)
                        ? grad[(((b.n * g.h + b.i) * g.w + j) * g.k + ky) * g.k + kx]
                        : T(0);
  }
  // Thread tid's products of one staged row, added into its sums.
  CVG_HD void accumulate(I tid, const T* scratch, Sums& acc) const {
    if (tid >= t.threads()) return;
    const I sl = t.fcg.div(tid), cgi = tid - sl * t.cg;
    const T* gs = scratch + t.grad_at(g.d);
    const T* ts[kDmGradChan];
    CVG_UNROLL
    for (int m = 0; m < kDmGradChan; ++m) {
      const I c = cgi + m * t.cg;
      ts[m] = scratch + (c < g.d ? c : 0) * t.tstride;  // channels past d: sums dropped
    }
    for (I u = sl; u < t.span; u += t.slices) {
      T gv[kDmCorrTileJ];
      dm_load_tile(gs + u * kDmCorrTileJ, gv);
      CVG_UNROLL
      for (int m = 0; m < kDmGradChan; ++m) {
        const T v = ts[m][u];
        CVG_UNROLL
        for (int jj = 0; jj < kDmCorrTileJ; ++jj) acc.s[m][jj] += gv[jj] * v;
      }
    }
  }
  // The sums go to the scratch as (m, jj, tid): consecutive threads, consecutive elements.
  CVG_HD void stash(I tid, const Sums& acc, T* scratch) const {
    if (tid >= t.threads()) return;
    CVG_UNROLL
    for (int m = 0; m < kDmGradChan; ++m)
      CVG_UNROLL
      for (int jj = 0; jj < kDmCorrTileJ; ++jj)
        scratch[(m * kDmCorrTileJ + jj) * t.threads() + tid] = acc.s[m][jj];
  }
  // Output item (c, jj): the slices' sums in slice order, to partial[p, n, c, i, j0 + jj].
  CVG_HD I out_items() const { return g.d * kDmCorrTileJ; }
  CVG_HD void finish(const Block& b, I item, const T* scratch) const {
    const I c = item / kDmCorrTileJ, jj = item - c * kDmCorrTileJ, j = b.j0 + jj;
    if (j >= g.w) return;
    const I m = t.fcg.div(c), cgi = c - m * t.cg;
    const T* s = scratch + (m * kDmCorrTileJ + jj) * t.threads() + cgi;
    T sum = T(0);
    for (I sl = 0; sl < t.slices; ++sl) sum += s[sl * t.cg];
    partial[(((b.p * g.n + b.n) * g.d + c) * g.h + b.i) * g.w + j] = sum;
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

// d tgt, tiled (version 2, not the default: kernels/deepmatch.h; DmCorrGradTarget is).
// One block per (pair n, target row y, tile of xt target columns x0 ..); thread tid = (channel
// group cgi of kDmTgtChan channels, column x0 + xl) keeps its kDmTgtChan sums in registers. For
// each reference row i whose window holds row y, in increasing order, the block stages the
// descriptors of the jn reference columns whose windows can reach the tile (jn x rowlen, channels
// contiguous, zeros past d), then each thread adds grad[n, i, j, ky, x - (stride j + offset - r)]
// times the descriptors of point (i, j) for the columns j whose window holds x, in increasing
// order: the same terms in the same order as DmCorrGradTarget, so the two give the same bits on
// one device. The gradient value is read from memory (neighbouring threads read neighbouring
// offsets: coalesced) once for kDmTgtChan channels; the descriptors are broadcast loads from the
// scratch (4 of 128 bits per term, for 16 multiply-adds).
constexpr int kDmTgtChan = 16;
static_assert(kDmTgtChan == 2 * kDmCorrTileJ, "a thread's descriptors are two dm_load_tile reads");
template <typename I>
struct DmGradTgtTileGeom {
  I cg = 1;      // channel groups: ceil(d / kDmTgtChan)
  I xt = 1;      // target columns per block: kDmGradThreads / cg
  I xtiles = 1;  // ceil(wt / xt)
  I jn = 1;      // reference columns whose windows can reach a tile: (xt - 1 + 2 r) / stride + 1
  I rowlen = kDmTgtChan;  // cg kDmTgtChan: one staged reference column
  FastDivOf<I> fxtiles, fht, fxt, frowlen;  // set with the sizes
  CVG_HD I scratch() const { return jn * rowlen; }
};

template <typename I>
DmGradTgtTileGeom<I> dm_grad_tgt_tile_geom(const DmCorrGeom<I>& g) {
  DmGradTgtTileGeom<I> t;
  t.cg = (g.d + kDmTgtChan - 1) / kDmTgtChan;
  t.xt = t.cg >= 1 && t.cg <= kDmGradThreads ? kDmGradThreads / t.cg : 1;
  t.xtiles = (g.wt + t.xt - 1) / t.xt;
  const I jn = (t.xt - 1 + 2 * g.r) / g.stride + 1;
  t.jn = jn < g.w ? jn : g.w;
  t.rowlen = t.cg * kDmTgtChan;
  t.fxtiles = FastDivOf<I>::for_size(t.xtiles);
  t.fht = FastDivOf<I>::for_size(g.ht);
  t.fxt = FastDivOf<I>::for_size(t.xt);
  t.frowlen = FastDivOf<I>::for_size(t.rowlen);
  return t;
}

template <typename T, typename I>
struct DmCorrGradTargetTiled {
  const T* grad;  // N x H x W x K x K
  const T* ref;   // N x d x H x W
  DmCorrGeom<I> g;
  DmGradTgtTileGeom<I> t;
  T* out;         // N x d x Ht x Wt

  struct Block {
    I n, y, x0;  // pair, target row, first column
    I ilo, ni;   // reference rows ilo .. ilo + ni - 1 see row y
    I jlo;       // first reference column whose window can reach the tile
  };
  struct Sums {
    T s[kDmTgtChan];
  };
  // Blocks: N x Ht x xtiles, the tile fastest.
  CVG_HD Block block(I b) const {
    Block k;
    const I row = t.fxtiles.div(b);
    k.x0 = (b - row * t.xtiles) * t.xt;
    k.n = t.fht.div(row);
    k.y = row - k.n * g.ht;
    const DmRowSpan<I> rows = dm_rows_seeing(g, k.y);
    k.ilo = rows.lo;
    k.ni = rows.n;
    const I jlo = dm_ceil_div(k.x0 - g.offset - g.r, g.fstride);
    k.jlo = jlo < 0 ? 0 : jlo;
    return k;
  }
  CVG_HD I ref_items() const { return t.jn * t.rowlen; }
  // scratch[jl rowlen + c] = ref[n, c, ilo + il, jlo + jl], 0 past d or the grid.
  CVG_HD void load_ref(const Block& b, I il, I item, T* scratch) const {
    const I jl = t.frowlen.div(item), c = item - jl * t.rowlen, j = b.jlo + jl;
    scratch[item] = c < g.d && j < g.w ? ref[((b.n * g.d + c) * g.h + b.ilo + il) * g.w + j] : T(0);
  }
  // Thread tid's terms of reference row ilo + il.
  CVG_HD void accumulate(const Block& b, I il, I tid, const T* scratch, Sums& acc) const {
    if (tid >= t.cg * t.xt) return;
    const I cgi = t.fxt.div(tid), x = b.x0 + tid - cgi * t.xt;
    if (x >= g.wt) return;
    const I i = b.ilo + il, ky = b.y - (g.stride * i + g.offset - g.r);
    const T* gp = grad + ((b.n * g.h + i) * g.w * g.k + ky) * g.k;  // point (i, 0), offset (ky, 0)
    const T* rs = scratch + cgi * kDmTgtChan;
    for (I jl = 0; jl < t.jn; ++jl) {
      const I j = b.jlo + jl, kx = x - (g.stride * j + g.offset - g.r);
      if (j >= g.w || kx < 0 || kx >= g.k) continue;
      const T v = gp[j * g.k * g.k + kx];
      T r[2][kDmCorrTileJ];
      dm_load_tile(rs + jl * t.rowlen, r[0]);
      dm_load_tile(rs + jl * t.rowlen + kDmCorrTileJ, r[1]);
      CVG_UNROLL
      for (int cc = 0; cc < kDmTgtChan; ++cc)
        acc.s[cc] += v * r[cc / kDmCorrTileJ][cc % kDmCorrTileJ];
    }
  }
  CVG_HD void store(const Block& b, I tid, const Sums& acc) const {
    if (tid >= t.cg * t.xt) return;
    const I cgi = t.fxt.div(tid), x = b.x0 + tid - cgi * t.xt;
    if (x >= g.wt) return;
    CVG_UNROLL
    for (int cc = 0; cc < kDmTgtChan; ++cc) {
      const I c = cgi * kDmTgtChan + cc;
      if (c < g.d) out[((b.n * g.d + c) * g.ht + b.y) * g.wt + x] = acc.s[cc];
    }
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
    T best = T(0);
    int best_t = 0;
    const I fy = g.fine_of(cy, 0), fx = g.fine_of(cx, 0);
    if (fy >= 0 && fy + 2 < g.k && fx >= 0 && fx + 2 < g.k) {
      // A window inside the map (most of them): its 9 taps unrolled, without a test each (ncu
      // found this kernel issue-bound); the same compares in the same order as below.
      const T* w = plane + fy * g.k + fx;
      best = w[0];
      CVG_UNROLL
      for (int t = 1; t < 9; ++t) {
        const T v = w[(t / 3) * g.k + t % 3];
        if (dm_beats(v, best)) best = v, best_t = t;
      }
      out[l] = best;
      sw[l] = static_cast<uint8_t>(best_t);
      return;
    }
    bool have = false;
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

// DmPoolForward by horizontal pairs of coarse outputs (version 2; not a default until a GPU has
// measured it). ncu found the per-output kernel issue-bound (80 % SM throughput, 0.84 warps
// issued per scheduler and cycle at 50 % of DRAM's on an H100), and it reached 70 % of copy
// bandwidth only with its interior taps unrolled. Item (row, b), row = point K' + cy, takes
// cx = 2 b and 2 b + 1: their windows share the fine column 4 b - pad + 2, so a pair inside the
// map loads 3 x 5 taps instead of 2 x 9 and decodes its index once. The same compares in the
// same order as DmPoolForward's (the same bits); pairs at the map's border, and a last single
// output of an odd K', go through DmPoolForward itself. Items: points K' ceil(K' / 2).
template <typename T, typename I>
struct DmPoolForwardPairs {
  const T* s;  // fine
  DmPoolGeom<I> g;
  I pairs = 1;          // per coarse row: ceil(K' / 2)
  FastDivOf<I> fpairs;  // by pairs (set with the sizes)
  T* out;       // coarse
  uint8_t* sw;  // coarse
  CVG_HD void operator()(I l) const {
    const I row = fpairs.div(l), cx = 2 * (l - row * pairs);
    const I c = row * g.kc + cx;  // the flat coarse index of (point, cy, cx)
    const I point = g.fkc.div(row), cy = row - point * g.kc;
    const I fy = g.fine_of(cy, 0), fx = g.fine_of(cx, 0);
    if (cx + 1 < g.kc && fy >= 0 && fy + 2 < g.k && fx >= 0 && fx + 4 < g.k) {
      const T* w = s + (point * g.k + fy) * g.k + fx;
      T v[3][5];
      CVG_UNROLL
      for (int r = 0; r < 3; ++r)
        CVG_UNROLL
        for (int x = 0; x < 5; ++x) v[r][x] = w[r * g.k + x];
      CVG_UNROLL
      for (int e = 0; e < 2; ++e) {  // window e: columns 2 e .. 2 e + 2 of the pair's taps
        T best = v[0][2 * e];
        int best_t = 0;
        CVG_UNROLL
        for (int t = 1; t < 9; ++t) {
          const T x = v[t / 3][2 * e + t % 3];
          if (dm_beats(x, best)) best = x, best_t = t;
        }
        out[c + e] = best;
        sw[c + e] = static_cast<uint8_t>(best_t);
      }
      return;
    }
    const DmPoolForward<T, I> one{s, g, out, sw};
    one(c);
    if (cx + 1 < g.kc) one(c + 1);
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

// DmPoolBackward by 2 x 2 cells of fine elements (version 2: the CPU's default,
// kernels/deepmatch.h). The per-element functor decodes its index, finds the coarse windows
// covering it and decodes their switches for each fine element: about 90 instructions per output,
// and ncu found it bound by instruction issue at 23 % of copy bandwidth (bench/results,
// 2026-11-22_3-dm-profile). Cell (a, b) owns fine rows and columns 2 a - pad + {1, 2} x 2 b - pad +
// {1, 2}; the coarse windows that can name them are (a + dy, b + dx), dy, dx in {0, 1} (fine 2 a -
// pad + 1 lies in window a only, 2 a - pad + 2 in windows a and a + 1). A work item loads those 4
// switches and gradients first, then adds each gradient to the cell element its switch names,
// visiting the windows in row-major order: each element gets DmPoolBackward's sum in its order (the
// same bits), and the index work is shared by 4 outputs. Cells per axis: floor((K + pad) / 2),
// which cover every fine row once. Items: points x cells^2.
template <typename I>
struct DmPoolCells {
  I cells = 1;               // per axis
  FastDivOf<I> fcells, fcc;  // by cells and cells^2 (set with the sizes)

  struct Cell {
    I point, a, b, fy0, fx0;  // fine rows fy0 + {0, 1}, columns fx0 + {0, 1}
  };
  CVG_HD Cell cell(I l, const DmPoolGeom<I>& g) const {
    const I point = fcc.div(l), c = l - point * cells * cells;
    const I a = fcells.div(c), b = c - a * cells;
    return {point, a, b, 2 * a - g.pad + 1, 2 * b - g.pad + 1};
  }
  // The switches t and values v of the windows (a + dy, b + dx) that exist (ok).
  template <typename T>
  CVG_HD void load(const Cell& c, const DmPoolGeom<I>& g, const uint8_t* sw, const T* x,
                   bool (&ok)[2][2], int (&t)[2][2], T (&v)[2][2]) const {
    const I base = c.point * g.kc * g.kc;
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        ok[dy][dx] = c.a + dy < g.kc && c.b + dx < g.kc;
        if (!ok[dy][dx]) continue;
        const I ci = base + (c.a + dy) * g.kc + c.b + dx;
        t[dy][dx] = sw[ci];
        v[dy][dx] = x[ci];
      }
  }
  // The cell element (ry, rx) that window (a + dy, b + dx) with switch t names; false when it
  // names an element of another cell (window a + dy starts at fine 2 (a + dy) - pad, the cell
  // at 2 a - pad + 1).
  static CVG_HD bool names(int dy, int dx, int t, int& ry, int& rx) {
    ry = 2 * dy + t / 3 - 1;
    rx = 2 * dx + t % 3 - 1;
    return ry >= 0 && ry < 2 && rx >= 0 && rx < 2;
  }
  // Whether window (a + dy, b + dx) with switch t names cell element (y, x), as names() would
  // say: such a window's switch must be 3 (y + 1 - 2 dy) + (x + 1 - 2 dx) with both parts in
  // 0..2. The kernels call it in fully unrolled loops over (y, x, dy, dx), where it is one
  // compare and every array index is a constant: indexing the 2 x 2 register arrays by values
  // read from memory (names()'s ry, rx) put them in local memory, 96-192 bytes of stack per
  // thread (ptxas), which made the unpooling cells 1.6-4.3x slower than version 1 on an H100.
  static CVG_HD bool names_element(int dy, int dx, int y, int x, int t) {
    const int ty = y + 1 - 2 * dy, tx = x + 1 - 2 * dx;
    return ty >= 0 && ty <= 2 && tx >= 0 && tx <= 2 && t == 3 * ty + tx;
  }
  // Whether this cell writes the coarse output of window (a + dy, b + dx) with switch t (the
  // gathers into coarse outputs: dm_unpool_backward): its named element clamped into the fine
  // plane lies in the cell. Clamped, every window has exactly one such cell, also one whose
  // switch names padding (no switch of dm_max_pool does: those outputs are then 0, never
  // unwritten). (ry, rx) as names() gives them.
  CVG_HD bool home(const Cell& c, const DmPoolGeom<I>& g, int dy, int dx, int t, int& ry,
                   int& rx) const {
    names(dy, dx, t, ry, rx);
    const I y = dm_clamp<I>(c.fy0 + ry, 0, g.k - 1) - c.fy0;
    const I x = dm_clamp<I>(c.fx0 + rx, 0, g.k - 1) - c.fx0;
    return y >= 0 && y < 2 && x >= 0 && x < 2;
  }
  // The flat coarse index of window (a + dy, b + dx).
  CVG_HD I coarse(const Cell& c, const DmPoolGeom<I>& g, int dy, int dx) const {
    return (c.point * g.kc + c.a + dy) * g.kc + c.b + dx;
  }
  // Element (ry, rx) of the cell in the fine plane: its flat index, or -1 outside the plane.
  CVG_HD I fine(const Cell& c, const DmPoolGeom<I>& g, int ry, int rx) const {
    const I fy = c.fy0 + ry, fx = c.fx0 + rx;
    return dm_in(fy, g.k) && dm_in(fx, g.k) ? (c.point * g.k + fy) * g.k + fx : I(-1);
  }
};

// a[y][x] for run-time y, x in {0, 1}, by selects (no local memory; see names_element).
template <typename V>
CVG_HD V dm_pick(const V (&a)[2][2], int y, int x) {
  return y == 0 ? (x == 0 ? a[0][0] : a[0][1]) : (x == 0 ? a[1][0] : a[1][1]);
}

template <typename T, typename I>
struct DmPoolBackwardCells {
  const T* grad;      // coarse
  const uint8_t* sw;  // coarse
  DmPoolGeom<I> g;
  DmPoolCells<I> pc;
  T* out;  // fine
  CVG_HD void operator()(I l) const {
    const auto c = pc.cell(l, g);
    bool ok[2][2];
    int t[2][2] = {};
    T gv[2][2] = {};
    pc.load(c, g, sw, grad, ok, t, gv);
    // Each element sums the windows naming it in row-major window order.
    CVG_UNROLL
    for (int y = 0; y < 2; ++y)
      CVG_UNROLL
      for (int x = 0; x < 2; ++x) {
        T acc = T(0);
        CVG_UNROLL
        for (int dy = 0; dy < 2; ++dy)
          CVG_UNROLL
          for (int dx = 0; dx < 2; ++dx)
            if (ok[dy][dx] && DmPoolCells<I>::names_element(dy, dx, y, x, t[dy][dx]))
              acc += gv[dy][dx];
        if (const I f = pc.fine(c, g, y, x); f >= 0) out[f] = acc;
      }
  }
};

// The cell's windows (ok, switches t, values qv of q_half, as DmPoolCells::load gives them) and
// the winning window of each cell element (dm_unpool_winner's rule: the largest value among the
// windows whose switch names it, the first in row-major window order on ties): win[ry][rx] =
// 2 dy + dx of window (a + dy, b + dx), -1 when no window names the element or all are -inf;
// val[ry][rx] the winner's value (-inf without one).
template <typename T>
struct DmCellWinners {
  bool ok[2][2];
  int t[2][2] = {}, win[2][2];
  T qv[2][2] = {}, val[2][2];
};
template <typename T, typename I>
CVG_HD DmCellWinners<T> dm_cell_winners(const DmPoolCells<I>& pc,
                                        const typename DmPoolCells<I>::Cell& c,
                                        const DmPoolGeom<I>& g, const uint8_t* sw, const T* qh) {
  DmCellWinners<T> r;
  pc.load(c, g, sw, qh, r.ok, r.t, r.qv);
  CVG_UNROLL
  for (int y = 0; y < 2; ++y)
    CVG_UNROLL
    for (int x = 0; x < 2; ++x) {
      T best = dm_neg_inf<T>();
      int win = -1;
      CVG_UNROLL
      for (int dy = 0; dy < 2; ++dy)
        CVG_UNROLL
        for (int dx = 0; dx < 2; ++dx)
          if (r.ok[dy][dx] && DmPoolCells<I>::names_element(dy, dx, y, x, r.t[dy][dx]) &&
              dm_beats(r.qv[dy][dx], best)) {
            best = r.qv[dy][dx];
            win = 2 * dy + dx;
          }
      r.win[y][x] = win;
      r.val[y][x] = best;
    }
  return r;
}

// DmUnpoolForward by the same 2 x 2 cells (version 2): s + the winner's value (-inf without
// one): the same bits.
template <typename T, typename I>
struct DmUnpoolForwardCells {
  const T* qh;        // coarse
  const uint8_t* sw;  // coarse
  const T* s;         // fine
  DmPoolGeom<I> g;
  DmPoolCells<I> pc;
  T* out;  // fine
  CVG_HD void operator()(I l) const {
    const auto c = pc.cell(l, g);
    const auto cw = dm_cell_winners(pc, c, g, sw, qh);
    CVG_UNROLL
    for (int y = 0; y < 2; ++y)
      CVG_UNROLL
      for (int x = 0; x < 2; ++x)
        if (const I f = pc.fine(c, g, y, x); f >= 0) out[f] = s[f] + cw.val[y][x];
  }
};

// DmUnpoolAdjoint by cells (version 2): a fine element takes x at its winner, 0 without one.
template <typename T, typename I>
struct DmUnpoolAdjointCells {
  const T* x;         // coarse
  const T* qh;        // coarse (decides the winners)
  const uint8_t* sw;  // coarse
  DmPoolGeom<I> g;
  DmPoolCells<I> pc;
  T* out;  // fine
  CVG_HD void operator()(I l) const {
    const auto c = pc.cell(l, g);
    const auto cw = dm_cell_winners(pc, c, g, sw, qh);
    T xv[2][2] = {};
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx)
        if (cw.ok[dy][dx]) xv[dy][dx] = x[pc.coarse(c, g, dy, dx)];
    CVG_UNROLL
    for (int y = 0; y < 2; ++y)
      CVG_UNROLL
      for (int xx = 0; xx < 2; ++xx)
        if (const I f = pc.fine(c, g, y, xx); f >= 0) {
          const int w = cw.win[y][xx];
          out[f] = w >= 0 ? dm_pick(xv, w / 2, w % 2) : T(0);
        }
  }
};

// DmUnpoolBackward by cells (version 2): each coarse output is written by the one cell that is
// its home (DmPoolCells::home): the gradient of the element it names when it wins that element,
// else 0. Items: cells, as the other cell kernels; outputs: coarse.
template <typename T, typename I>
struct DmUnpoolBackwardCells {
  const T* grad;      // fine
  const T* qh;        // coarse (decides the winners)
  const uint8_t* sw;  // coarse
  DmPoolGeom<I> g;
  DmPoolCells<I> pc;
  T* out;  // coarse
  CVG_HD void operator()(I l) const {
    const auto c = pc.cell(l, g);
    const auto cw = dm_cell_winners(pc, c, g, sw, qh);
    int ry = 0, rx = 0;
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        if (!cw.ok[dy][dx] || !pc.home(c, g, dy, dx, cw.t[dy][dx], ry, rx)) continue;
        const I f = pc.fine(c, g, ry, rx);
        const bool wins = f >= 0 && dm_pick(cw.win, ry, rx) == 2 * dy + dx;
        out[pc.coarse(c, g, dy, dx)] = wins ? grad[f] : T(0);
      }
  }
};

// dm_unpool's two gradients in one pass by cells (dm_unpool_grads: the layer's backward when no
// graph is built of it). The separate ops read the fine gradient twice: DmSkipBackward streams it
// once, and DmUnpoolBackward(Cells) reads it again at the switches: 16 % of the elements for
// random scores at K = 161, but in 79 % of its 32-byte sectors, which left that op at 32 % of
// its counted bytes on an H100. Here a cell loads its 2 x 2 gradients and Q_l values once,
// coalesced (neighbouring items hold neighbouring columns), writes d s for them (DmSkipBackward's
// rule: the gradient where Q_l > -inf) and d q_half for the windows whose home it is
// (DmUnpoolBackwardCells's rule), taking the named element's gradient from registers: the same
// bits as the two ops. ds or dqh may be null (that gradient is not wanted).
template <typename T, typename I>
struct DmUnpoolGradsCells {
  const T* grad;      // fine
  const T* q;         // fine: Q_l, dm_unpool's output (its -inf routes no gradient to s)
  const T* qh;        // coarse (decides the winners)
  const uint8_t* sw;  // coarse
  DmPoolGeom<I> g;
  DmPoolCells<I> pc;
  T* ds;   // fine, or null
  T* dqh;  // coarse, or null
  CVG_HD void operator()(I l) const {
    const auto c = pc.cell(l, g);
    const auto cw = dm_cell_winners(pc, c, g, sw, qh);
    T gv[2][2] = {}, qv[2][2] = {};
    CVG_UNROLL
    for (int y = 0; y < 2; ++y)
      CVG_UNROLL
      for (int x = 0; x < 2; ++x)
        if (const I f = pc.fine(c, g, y, x); f >= 0) {
          gv[y][x] = grad[f];
          if (ds) qv[y][x] = q[f];
        }
    if (ds) {
      CVG_UNROLL
      for (int y = 0; y < 2; ++y)
        CVG_UNROLL
        for (int x = 0; x < 2; ++x)
          if (const I f = pc.fine(c, g, y, x); f >= 0)
            ds[f] = qv[y][x] > dm_neg_inf<T>() ? gv[y][x] : T(0);
    }
    if (!dqh) return;
    int ry = 0, rx = 0;
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        if (!cw.ok[dy][dx] || !pc.home(c, g, dy, dx, cw.t[dy][dx], ry, rx)) continue;
        // Outside the plane (a switch naming padding) home's ry, rx may leave the cell: then
        // fine() is -1 and the short circuit keeps dm_pick to the 2 x 2 it knows.
        const bool wins = pc.fine(c, g, ry, rx) >= 0 && dm_pick(cw.win, ry, rx) == 2 * dy + dx;
        dqh[pc.coarse(c, g, dy, dx)] = wins ? dm_pick(gv, ry, rx) : T(0);
      }
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

// ---- unpooling by whole point planes: CPU loops (kernels/deepmatch_cpu.cpp) ----------------
// The gathers above find each fine element's winner among the windows covering it. On the CPU
// it is cheaper to visit a point's coarse windows once, in row-major order, each offering its
// value to the element its switch names (dm_beats against the best offer so far, starting from
// -inf): every element sees the offers of the windows naming it in the gather's order, so it
// ends with the gather's winner (-1 and -inf without one), and the three unpooling ops read
// their outputs off that: the same bits as the gathers. A switch is taken only where the gather
// could match it: a window-local index below 9 naming an element inside the plane (dm_max_pool
// never makes another; dm_unpool_backward gives such a window 0, as its cells do). No GPU
// kernel: each thread needs scratch planes (DmPlaneScratch: k^2 values and winners).
template <typename T, typename I>
struct DmPlaneScratch {
  T* best;  // k^2
  I* win;   // k^2: the winning window's index in the point's coarse plane, or -1
};

// The fine element (flat in its plane) that coarse (cy, cx) with switch t names, -1 when none.
template <typename I>
CVG_HD I dm_switch_target(const DmPoolGeom<I>& g, I cy, I cx, int t) {
  if (t >= 9) return -1;
  const I fy = g.fine_of(cy, t / 3), fx = g.fine_of(cx, t % 3);
  return dm_in(fy, g.k) && dm_in(fx, g.k) ? fy * g.k + fx : I(-1);
}

// fn(c, f) for point `point`'s coarse windows c (flat in its coarse plane) in row-major order,
// f being the fine element (flat in its plane) that c's switch names, -1 when none.
template <typename I, typename Fn>
void dm_each_window(const uint8_t* sw, const DmPoolGeom<I>& g, I point, Fn&& fn) {
  const I base = point * g.kc * g.kc;
  for (I cy = 0; cy < g.kc; ++cy)
    for (I cx = 0; cx < g.kc; ++cx) {
      const I c = cy * g.kc + cx;
      fn(c, dm_switch_target(g, cy, cx, sw[base + c]));
    }
}

// Winners of point `point`'s fine plane into the scratch.
template <typename T, typename I>
void dm_plane_winners(const T* qh, const uint8_t* sw, const DmPoolGeom<I>& g, I point,
                      const DmPlaneScratch<T, I>& sc) {
  const I kk = g.k * g.k, base = point * g.kc * g.kc;
  for (I f = 0; f < kk; ++f) {
    sc.best[f] = dm_neg_inf<T>();
    sc.win[f] = -1;
  }
  dm_each_window(sw, g, point, [&](I c, I f) {
    if (f >= 0 && dm_beats(qh[base + c], sc.best[f])) {
      sc.best[f] = qh[base + c];
      sc.win[f] = c;
    }
  });
}

// One tap t of a row of windows (DmPoolForwardPlane): window u's tap value is src[2 u]; it
// replaces the running best (and tap, its index as T) where dm_beats says so, written without
// branches and with the pointers declared apart so that the compiler vectorises the loop.
template <typename T, typename I>
inline void dm_pool_tap(T* __restrict best, T* __restrict tap, const T* __restrict src, I n,
                        T t) {
  for (I u = 0; u < n; ++u) {
    const T v = src[2 * u], b = best[u], bt = tap[u];
    const bool wins = (v > b) | ((v != v) & (b == b));
    best[u] = wins ? v : b;
    tap[u] = wins ? t : bt;
  }
}

// dm_max_pool by whole point planes (the CPU's default): DmPoolForward's windows in its order,
// row by row, with the rows and columns in the map worked out once per row and window column
// instead of tested per tap and decoded from a flat index per output. The windows wholly inside
// the map (most of them) of a row whose 3 fine rows lie in the map go tap by tap over the whole
// row: each tap is one loop over the windows (a stride-2 load, two compares and two selects per
// window, which the compiler vectorises), the running best in the output row and its tap in the
// scratch (as T: one vector width for both). The same compares in the same order: the same
// values and switches.
template <typename T, typename I>
struct DmPoolForwardPlane {
  const T* s;  // fine
  DmPoolGeom<I> g;
  T* out;       // coarse
  uint8_t* sw;  // coarse
  void operator()(I point, const DmPlaneScratch<T, I>& sc) const {
    const T* plane = s + point * g.k * g.k;
    const I base = point * g.kc * g.kc;
    // Windows cx in [c0, c1) lie inside the map's columns: 0 <= 2 cx - pad, 2 cx - pad + 2 < k.
    const I c0 = (g.pad + 1) / 2;
    const I c1 = g.k >= 3 ? dm_clamp<I>((g.k - 3 + g.pad) / 2 + 1, 0, g.kc) : I(0);
    for (I cy = 0; cy < g.kc; ++cy) {
      const I fy = g.fine_of(cy, 0);
      const int ty0 = fy < 0 ? static_cast<int>(-fy) : 0;
      const int ty1 = fy + 2 < g.k ? 2 : static_cast<int>(g.k - 1 - fy);
      const bool by_taps = ty0 == 0 && ty1 == 2 && c0 < c1;
      if (by_taps) {
        T* best = out + base + cy * g.kc;
        T* tap = sc.best;  // kc <= k^2 entries
        const T* r0 = plane + fy * g.k;
        for (I cx = c0; cx < c1; ++cx) {
          best[cx] = r0[2 * cx - g.pad];
          tap[cx] = T(0);
        }
        for (int t = 1; t < 9; ++t)
          dm_pool_tap(best + c0, tap + c0, plane + (fy + t / 3) * g.k + t % 3 + 2 * c0 - g.pad,
                      c1 - c0, static_cast<T>(t));
        for (I cx = c0; cx < c1; ++cx) sw[base + cy * g.kc + cx] = static_cast<uint8_t>(tap[cx]);
      }
      for (I cx = 0; cx < g.kc; ++cx) {
        if (by_taps && cx == c0) cx = c1;  // done above
        if (cx >= g.kc) break;
        const I fx = g.fine_of(cx, 0);
        const int tx0 = fx < 0 ? static_cast<int>(-fx) : 0;
        const int tx1 = fx + 2 < g.k ? 2 : static_cast<int>(g.k - 1 - fx);
        T best = T(0);
        int best_t = 0;
        if (ty0 == 0 && ty1 == 2 && tx0 == 0 && tx1 == 2) {
          const T* w = plane + fy * g.k + fx;
          best = w[0];
          for (int t = 1; t < 9; ++t) {
            const T v = w[(t / 3) * g.k + t % 3];
            if (dm_beats(v, best)) best = v, best_t = t;
          }
        } else {
          bool have = false;
          for (int ty = ty0; ty <= ty1; ++ty)
            for (int tx = tx0; tx <= tx1; ++tx) {
              const T v = plane[(fy + ty) * g.k + fx + tx];
              if (!have || dm_beats(v, best)) have = true, best = v, best_t = 3 * ty + tx;
            }
        }
        out[base + cy * g.kc + cx] = best;
        sw[base + cy * g.kc + cx] = static_cast<uint8_t>(best_t);
      }
    }
  }
};

// dm_max_pool_backward by whole point planes (the CPU's default): the fine plane starts at 0
// and the coarse windows, in row-major order, add their gradients to the elements their
// switches name: each element gets the windows naming it in DmPoolBackward's order, the same
// sum bit for bit, without the gather's search of every element's covering windows. A switch
// naming no element of the plane (padding, or an index >= 9: dm_max_pool makes neither) adds
// nothing, as no element's gather matches it. (No scratch: out is written in place.)
template <typename T, typename I>
struct DmPoolBackwardPlane {
  const T* grad;      // coarse
  const uint8_t* sw;  // coarse
  DmPoolGeom<I> g;
  T* out;             // fine
  void operator()(I point, const DmPlaneScratch<T, I>&) const {
    const I kk = g.k * g.k, base = point * g.kc * g.kc;
    T* op = out + point * kk;
    for (I f = 0; f < kk; ++f) op[f] = T(0);
    dm_each_window(sw, g, point, [&](I c, I f) {
      if (f >= 0) op[f] += grad[base + c];
    });
  }
};

// dm_unpool: s + the winner's value, -inf without one. The winners' values are found in the
// output plane itself (dm_plane_winners's offers without the winners' indices, which only the
// gradients need): no scratch planes (12 bytes per element, 311 KB per point at K = 161). It
// measured no faster for that: this op's third of a full-size CPU match was the page faults
// of its output (core/storage.cpp), gone with huge pages.
template <typename T, typename I>
struct DmUnpoolForwardPlane {
  const T* qh;        // coarse
  const uint8_t* sw;  // coarse
  const T* s;         // fine
  DmPoolGeom<I> g;
  T* out;             // fine
  void operator()(I point, const DmPlaneScratch<T, I>&) const {
    const I kk = g.k * g.k, base = point * g.kc * g.kc;
    const T* sp = s + point * kk;
    T* op = out + point * kk;
    for (I f = 0; f < kk; ++f) op[f] = dm_neg_inf<T>();
    dm_each_window(sw, g, point, [&](I c, I f) {
      if (f >= 0 && dm_beats(qh[base + c], op[f])) op[f] = qh[base + c];
    });
    for (I f = 0; f < kk; ++f) op[f] = sp[f] + op[f];
  }
};

// dm_unpool_backward: a coarse window gets the gradient of the element it names when it won
// that element, else 0.
template <typename T, typename I>
struct DmUnpoolBackwardPlane {
  const T* grad;      // fine
  const T* qh;        // coarse (decides the winners)
  const uint8_t* sw;  // coarse
  DmPoolGeom<I> g;
  T* out;             // coarse
  void operator()(I point, const DmPlaneScratch<T, I>& sc) const {
    dm_plane_winners(qh, sw, g, point, sc);
    const I base = point * g.kc * g.kc;
    const T* gp = grad + point * g.k * g.k;
    dm_each_window(sw, g, point, [&](I c, I f) {
      out[base + c] = f >= 0 && sc.win[f] == c ? gp[f] : T(0);
    });
  }
};

// dm_unpool_adjoint: a fine element takes x at its winner, 0 without one.
template <typename T, typename I>
struct DmUnpoolAdjointPlane {
  const T* x;         // coarse
  const T* qh;        // coarse (decides the winners)
  const uint8_t* sw;  // coarse
  DmPoolGeom<I> g;
  T* out;             // fine
  void operator()(I point, const DmPlaneScratch<T, I>& sc) const {
    dm_plane_winners(qh, sw, g, point, sc);
    const I kk = g.k * g.k;
    const T* xp = x + point * g.kc * g.kc;
    T* op = out + point * kk;
    for (I f = 0; f < kk; ++f) op[f] = sc.win[f] >= 0 ? xp[sc.win[f]] : T(0);
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

// d S_l of dm_unpool (dm_unpool_skip_backward): the gradient where Q_l is finite, 0 where it is
// -inf (-inf routes no gradient). One fused pass instead of a compare and a select; item l
// handles the elements l + u * quarter (u < kDmSkipSpan, those below n), loading them all before
// its first store, as DmPowerForward does (items: quarter = ceil(n / kDmSkipSpan)).
constexpr int kDmSkipSpan = 4;
template <typename T, typename I>
struct DmSkipBackward {
  const T* grad;
  const T* q;  // Q_l, dm_unpool's output
  T* out;
  I n, quarter;
  CVG_HD void operator()(I l) const {
    T gv[kDmSkipSpan] = {}, qv[kDmSkipSpan] = {};
    CVG_UNROLL
    for (int u = 0; u < kDmSkipSpan; ++u)
      if (l + u * quarter < n) {
        gv[u] = grad[l + u * quarter];
        qv[u] = q[l + u * quarter];
      }
    CVG_UNROLL
    for (int u = 0; u < kDmSkipSpan; ++u)
      if (l + u * quarter < n) out[l + u * quarter] = qv[u] > dm_neg_inf<T>() ? gv[u] : T(0);
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

// The mean over the in-grid (i + sh[ey], j + sh[ex]); 0 when none is in the grid.
template <typename T, typename I, typename At>
CVG_HD T dm_agg_mean(const DmAggGeom<I>& g, I i, I j, const I (&sh)[2], At&& at) {
  T acc = T(0);
  I cnt = 0;
  for (int ey = 0; ey < 2; ++ey) {
    if (!dm_in(i + sh[ey], g.h)) continue;
    for (int ex = 0; ex < 2; ++ex) {
      if (!dm_in(j + sh[ex], g.w)) continue;
      acc += at(ey, ex);
      ++cnt;
    }
  }
  return cnt > 0 ? acc * dm_inv_count<T>(cnt) : T(0);
}

// The sum over the in-grid parents (pi, pj) = (i + sh[ey], j + sh[ex]) of x / children(parent),
// children(parent) the product of the parent's in-grid children per axis.
template <typename T, typename I, typename At>
CVG_HD T dm_agg_spread(const DmAggGeom<I>& g, I i, I j, const I (&sh)[2], At&& at) {
  T acc = T(0);
  for (int ey = 0; ey < 2; ++ey) {
    if (!dm_in(i + sh[ey], g.h)) continue;
    for (int ex = 0; ex < 2; ++ex) {
      if (!dm_in(j + sh[ex], g.w)) continue;
      const I children = g.children(i + sh[ey], g.h) * g.children(j + sh[ex], g.w);
      acc += at(ey, ex) * dm_inv_count<T>(children);
    }
  }
  return acc;
}

// The first maximum over corners e = 2 ey + ex in e order (its corner in e_best), -inf and
// kDmNoParent when no corner is in the grid and finite.
constexpr uint8_t kDmNoParent = 0xFF;
template <typename T, typename I, typename At>
CVG_HD T dm_disagg_best(const DmAggGeom<I>& g, I i, I j, const I (&sh)[2], At&& at,
                        uint8_t& e_best) {
  T best = dm_neg_inf<T>();
  e_best = kDmNoParent;
  for (int e = 0; e < 4; ++e) {
    if (!dm_in(i + sh[e / 2], g.h) || !dm_in(j + sh[e % 2], g.w)) continue;
    const T v = at(e / 2, e % 2);
    if (dm_beats(v, best)) {
      best = v;
      e_best = static_cast<uint8_t>(e);
    }
  }
  return best;
}

// The sum of x over the in-grid corners e whose switch sw_at(ey, ex) names e.
template <typename T, typename I, typename SwAt, typename At>
CVG_HD T dm_disagg_route(const DmAggGeom<I>& g, I i, I j, const I (&sh)[2], SwAt&& sw_at,
                         At&& at) {
  T acc = T(0);
  for (int e = 0; e < 4; ++e) {
    if (!dm_in(i + sh[e / 2], g.h) || !dm_in(j + sh[e % 2], g.w)) continue;
    if (sw_at(e / 2, e % 2) == e) acc += at(e / 2, e % 2);
  }
  return acc;
}

// The same four expressions for the walkers below (runs, spans), which hold a neighbour outside
// the grid at a fill value instead of loading it: 0 (mean, spread: its term is +0, which leaves
// the sum unchanged bit for bit, since a sum that starts at +0 is never -0), -inf (best: it
// never beats) or kDmNoParent (route: it names no corner). So they need no grid test per corner:
// ncu found those kernels bound by instruction issue, and the tests were a fifth of the
// disaggregation backward's PTX. cnt: the number of in-grid neighbours; rows(ey) * cols(ex):
// the parent's child count, any value for a parent outside the grid.
template <typename T, typename I, typename At>
CVG_HD T dm_agg_mean_filled(I cnt, At&& at) {
  T acc = T(0);
  for (int ey = 0; ey < 2; ++ey)
    for (int ex = 0; ex < 2; ++ex) acc += at(ey, ex);
  return cnt > 0 ? acc * dm_inv_count<T>(cnt) : T(0);
}
template <typename T, typename At, typename Rows, typename Cols>
CVG_HD T dm_agg_spread_filled(At&& at, Rows&& rows, Cols&& cols) {
  T acc = T(0);
  for (int ey = 0; ey < 2; ++ey)
    for (int ex = 0; ex < 2; ++ex) acc += at(ey, ex) * dm_inv_count<T>(rows(ey) * cols(ex));
  return acc;
}
template <typename T, typename At>
CVG_HD T dm_disagg_best_filled(At&& at, uint8_t& e_best) {
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
template <typename T, typename SwAt, typename At>
CVG_HD T dm_disagg_route_filled(SwAt&& sw_at, At&& at) {
  T acc = T(0);
  for (int e = 0; e < 4; ++e)
    if (sw_at(e / 2, e % 2) == e) acc += at(e / 2, e % 2);
  return acc;
}

// A[i, k] = mean over the in-grid children of S[child, k]; 0 for a point without children.
template <typename T, typename I>
struct DmAggForward {
  const T* s;
  DmAggGeom<I> g;
  T* out;
  CVG_HD void operator()(I l) const {
    const auto [i, j] = g.where(l);
    const I sh[2] = {g.lo, g.hi};
    out[l] = dm_agg_mean<T>(g, i, j, sh,
                            [&](int ey, int ex) { return s[g.moved(l, sh[ey], sh[ex])]; });
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
    out[l] = dm_agg_spread<T>(g, i, j, sh,
                              [&](int ey, int ex) { return grad[g.moved(l, sh[ey], sh[ex])]; });
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
    out[l] = dm_disagg_best<T>(
        g, i, j, sh, [&](int ey, int ex) { return q[g.moved(l, sh[ey], sh[ex])]; }, e_best);
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
    out[l] = dm_disagg_route<T>(
        g, i, j, sh, [&](int ey, int ex) { return sw[g.moved(l, sh[ey], sh[ex])]; },
        [&](int ey, int ex) { return grad[g.moved(l, sh[ey], sh[ex])]; });
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
// neighbour outside the grid: see dm_agg_mean_filled).
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
// Each output is the per-element functor's expression (dm_agg_mean, ...) in its filled form
// (dm_agg_mean_filled, ...) on the walker's registers: the same bits.
template <typename T, typename I, typename W>
struct DmAggForwardBy {
  const T* s;
  DmAggGeom<I> g;
  W w;
  T* out;
  CVG_HD void operator()(I l) const {
    const I sh[2] = {g.lo, g.hi};
    dm_walk<true>(s, g, w, l, sh, T(0), [&](I e, I i, I j, auto&& at) {
      out[e] = dm_agg_mean_filled<T>(g.children(i, g.h) * g.children(j, g.w), at);
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
      out[e] = dm_agg_spread_filled<T>(
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
          out[e] = dm_agg_spread_filled<T>(
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
      out[e] = dm_disagg_best_filled<T>(at, e_best);
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
                     out[e] = dm_disagg_route_filled<T>(sw_at, at);
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

// ---- sums over a grid of blocks, in one fixed order on both devices -------------------------
// v[0] = the sum of v[0 .. n), n a power of two, added in a fixed tree: for h = n / 2, n / 4,
// ..., 1 each v[t] += v[t + h], t < h. A CUDA block does the same steps between barriers (one
// thread per t), so the two devices add in one order.
template <typename T>
void dm_tree_sum(T* v, int n) {
  for (int h = n / 2; h > 0; h /= 2)
    for (int t = 0; t < h; ++t) v[t] += v[t + h];
}

// A sum of one value per work item in one kernel (DmHingeLoss, DmPowerBackward): block b of
// kDmGridBlock items adds their values in a tree (dm_tree_sum), writes block_sum[b], and the
// last block to finish (deepmatch_cuda.cu) adds the blocks' sums: thread t takes block_sum[t],
// block_sum[t + kDmGridBlock], ... in increasing order (part()), and the threads' parts meet in a
// tree again; total = that sum times `scale`. The CPU (deepmatch_cpu.cpp) takes the same steps.
// So no partial sums are written per item, nor summed by separate reduction kernels.
constexpr int kDmGridBlock = 256;
template <typename T, typename I>
struct DmGridSum {
  T* block_sum = nullptr;  // one per block
  T* total = nullptr;      // one value
  I blocks = 0;
  double scale = 1.0;
  // load(ptr) reads a block's sum: past the L1 on a GPU, where other blocks wrote it.
  template <typename Load>
  CVG_HD T part(int t, Load&& load) const {
    T acc = T(0);
    for (I b = static_cast<I>(t); b < blocks; b += static_cast<I>(kDmGridBlock))
      acc += load(block_sum + b);
    return acc;
  }
  CVG_HD T finish(T sum) const { return sum * static_cast<T>(scale); }
};

// ---- power --------------------------------------------------------------------------------
template <typename T>
CVG_HD T dm_exp(T x);
template <>
CVG_HD float dm_exp<float>(float x) {
  return expf(x);
}
template <>
CVG_HD double dm_exp<double>(double x) {
  return ::exp(x);
}

template <typename T>
CVG_HD T dm_log(T x);
template <>
CVG_HD float dm_log<float>(float x) {
  return logf(x);
}
template <>
CVG_HD double dm_log<double>(double x) {
  return ::log(x);
}

// y = A^nu = exp(nu ln A) for A > 0, and 0 for A <= 0 (the limit at 0 for nu > 0).
template <typename T>
CVG_HD T dm_pow(T a, T nu) {
  return a > T(0) ? dm_exp(nu * dm_log(a)) : T(0);
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

// dm_power's backward in one pass, for when no graph is built of it (kernels/deepmatch.cpp):
// da = g (A^(nu - 1) nu), and the terms (g y) ln A whose sum is d nu, with y = A^nu recomputed
// (the forward's own expression: the bits of its output) and ln A taken of 1 where A <= 0: the
// expressions of the differentiable composition used with create_graph, in its order. Item l
// takes the elements l + m items (m < kDmPowerRun, below n: neighbouring items read
// neighbouring elements), loads them all before its first store, and adds its terms in
// registers. The items' sums meet in a DmGridSum (blocks of kDmGridBlock items): the backward
// reads A and g and writes dA and one value per block, nothing more (a terms tensor and y would
// add two thirds to that; the items' sums, one per 16 elements written and read back by a
// reduction op, added half a byte per element to the 12 counted, and one or two kernels).
// Either output may be null (not wanted).
constexpr int kDmPowerRun = 16;
template <typename T, typename I>
struct DmPowerBackward {
  const T* grad;
  const T* a;
  const T* nu;  // one element
  T* da;
  DmGridSum<T, I> dnu;  // its `total` null: d nu not wanted
  I n, items;
  // Item l: writes its elements of da, returns the sum of its terms of d nu.
  CVG_HD T item(I l) const {
    T av[kDmPowerRun] = {}, gv[kDmPowerRun] = {};
    CVG_UNROLL
    for (int m = 0; m < kDmPowerRun; ++m)
      if (l + m * items < n) {
        av[m] = a[l + m * items];
        gv[m] = grad[l + m * items];
      }
    const T p = nu[0];
    T acc = T(0);
    CVG_UNROLL
    for (int m = 0; m < kDmPowerRun; ++m) {
      if (l + m * items >= n) continue;
      // ln A once (0 = ln 1 where A <= 0) for both powers and the log term, as dm_pow takes
      // it: a host compiler must call log three times otherwise (it may set errno).
      const bool pos = av[m] > T(0);
      const T la = dm_log(pos ? av[m] : T(1));
      if (da) da[l + m * items] = gv[m] * ((pos ? dm_exp((p - T(1)) * la) : T(0)) * p);
      if (dnu.total) acc += (gv[m] * (pos ? dm_exp(p * la) : T(0))) * la;
    }
    return acc;
  }
};

// ---- structured hinge loss ----------------------------------------------------------------
// Per reference point: gt[point] = (gy, gx) offset indices of the ground truth. The point takes
// part when gt lies in [0, K)^2 and its score is finite; then each finite q contributes
//     max(0, 1 - exp(-|q - gt|^2 / (2 sigma^2)) + Q[q] - Q[gt])
// with |q - gt| measured in offset steps. The Gaussian is taken in T's precision: in float64 a
// GPU's exp runs on its few double-precision units, which bounded the loss's kernels there
// (15 % of copy bandwidth on an H100, ncu: SM-bound; bench/results, 2026-11-22_3-dm-profile).
//
// The loss is the mean of the terms over all N H W K^2 scores.
//
// The forward's work items are (point, slice), kDmHingeSlices slices per point (fewer when K^2
// is smaller): item (point, s) takes the terms k = s, s + slices, ... < K^2 in increasing
// order, so neighbouring items read neighbouring scores (coalesced) and the point's ground
// truth is found once per item. The forward is one kernel (DmHingeLoss): a block of
// kDmHingeSlices threads per point, thread s summing slice s in registers; the slices' sums and
// counts of active terms meet in a fixed tree (dm_tree_sum), giving the point's sum and count;
// the last block to finish adds the points' sums the same way and writes the loss. So the
// N H W K^2 terms never reach memory, nor do the slices' sums. It was five kernels (the slices'
// sums written, summed per point twice, summed and scaled): on an H100 the op took 83 us at
// K = 161 where ncu timed the terms' kernel at 63 us, and 26 us at K = 41, with 16x fewer terms
// (bench/results, 2026-11-23_7-final and _8-ncu).
//
// The backward needs no sums, so its items are short (DmHingeGrad): (point, s) for
// s < spans = ceil(K^2 / kDmHingeSpan), writing k = s + u spans (u < kDmHingeSpan). When its
// items were the forward's slices (a hundred scores each at K = 161, one wave of blocks), its
// warps went through their rounds of loads, terms and stores almost in step and waited on the
// loads three quarters of the time (ncu on an H100: 1.2 of 14 warps eligible per cycle, 54 %
// of copy bandwidth), where the elementwise layers, whose blocks come and go, reach 90-98 %.
constexpr int64_t kDmHingeSlices = 256;
constexpr int kDmHingeSpan = 4;

template <typename I>
struct DmHingeGeom {
  I points = 0, k = 1, slices = 1, spans = 1;  // spans = ceil(K^2 / kDmHingeSpan)
  double inv_two_sigma2 = 0.5;
  FastDivOf<I> fk, fspans;  // by k and spans (set with the sizes)
  I near[2] = {1, 1};        // dm_hinge_near of float ([0]) and double ([1]), set with sigma
};

// The Gaussian's reach. Outside the box |q - gt| <= r per axis (|q - gt|^2 >= (r + 1)^2) the
// margin 1 - exp(-x), x = |q - gt|^2 / (2 sigma^2) taken in T, is exactly 1 in T when
// exp(-x) <= 2^-(p + 2), p = T's mantissa bits: below half an ulp of 1 with a factor of 2 to
// spare for a GPU's exp (within 2 ulp), and x only grows with |q - gt|^2 (each step of it
// rounds monotonically). So the terms there skip the exp and keep their bits: at sigma = 2 the
// box is 25 x 25 (float) of the 161 x 161 scores of a point at R = 80. Host only; capped at k
// (then every term takes the exp).
template <typename T>
int64_t dm_hinge_near(double inv_two_sigma2, int64_t k) {
  const double tiny = std::ldexp(1.0, -(std::numeric_limits<T>::digits + 2));
  for (int64_t r = 0; r < k; ++r) {
    const T x = static_cast<T>((r + 1) * (r + 1)) * static_cast<T>(inv_two_sigma2);
    if (std::exp(-static_cast<double>(x)) <= tiny) return r;
  }
  return k;
}

// The hinge term of score v = Q[point, q] (q a flat offset) of a taking-part point, at_gt its
// score at the ground truth gy K + gx (finite).
template <typename T, typename I>
CVG_HD T dm_hinge_term(T v, const DmHingeGeom<I>& g, std::type_identity_t<I> gy,
                       std::type_identity_t<I> gx, std::type_identity_t<I> q, T at_gt) {
  if (!(v > dm_neg_inf<T>())) return T(0);  // -inf (and NaN) scores never take part
  const I qy = g.fk.div(q), iy = qy - gy, ix = q - qy * g.k - gx;
  const I r = g.near[std::is_same_v<T, double> ? 1 : 0];
  T margin = T(1);  // exactly, outside the box (dm_hinge_near)
  if (dm_in(iy + r, 2 * r + 1) && dm_in(ix + r, 2 * r + 1)) {
    const T dy = static_cast<T>(iy), dx = static_cast<T>(ix);
    margin = T(1) - dm_exp(-(dy * dy + dx * dx) * static_cast<T>(g.inv_two_sigma2));
  }
  const T t = margin + v - at_gt;
  return t > T(0) ? t : T(0);
}

// The item's point, slice and ground truth; gt_flat = -1 when the point does not take part.
template <typename I>
struct DmHingeItem {
  I point, slice, gy, gx, gt_flat;
};
template <typename T, typename I>
CVG_HD DmHingeItem<I> dm_hinge_item(const T* q, const int32_t* gt, const DmHingeGeom<I>& g,
                                    I point, I slice) {
  const I gy = gt[2 * point], gx = gt[2 * point + 1];
  I flat = -1;
  if (dm_in(gy, g.k) && dm_in(gx, g.k) && q[point * g.k * g.k + gy * g.k + gx] > dm_neg_inf<T>())
    flat = gy * g.k + gx;
  return {point, slice, gy, gx, flat};
}

// fn(k, plane[k]) for k = first, first + step, ... < end in increasing order (fn must not
// write the plane), the scores loaded kDmHingeIlp at a time, each round's loads issued before
// the previous round's terms, so that a thread always has loads in flight: one load in flight
// per thread left the loss's kernels at 43-52 % of the copy bandwidth on an H100, rounds of 4
// loads each used before the next round's (the backward shared this walk then, and the next
// load could not move above its stores) gained little, rounds of 8 measured the same (72 / 135
// us against 69-83 / 131-132 us for 4).
constexpr int kDmHingeIlp = 4;
template <typename T, typename I, typename Fn>
CVG_HD void dm_hinge_walk(const T* plane, I first, I step, I end, Fn&& fn) {
  constexpr int B = kDmHingeIlp;
  I k = first;
  if (k + (B - 1) * step < end) {
    T v[B];
    CVG_UNROLL
    for (int u = 0; u < B; ++u) v[u] = plane[k + u * step];
    for (;;) {
      const I next = k + B * step;
      const bool more = next + (B - 1) * step < end;
      T w[B] = {};
      if (more) {
        CVG_UNROLL
        for (int u = 0; u < B; ++u) w[u] = plane[next + u * step];
      }
      CVG_UNROLL
      for (int u = 0; u < B; ++u) fn(k + u * step, v[u]);
      k = next;
      if (!more) break;
      CVG_UNROLL
      for (int u = 0; u < B; ++u) v[u] = w[u];
    }
  }
  for (; k < end; k += step) fn(k, plane[k]);
}

// Forward (one block of kDmHingeSlices threads per point; deepmatch_cuda.cu's hinge_loss_kernel,
// deepmatch_cpu.cpp's run_cpu do the same steps): slice() per thread, the trees per point, the
// point's sum (loss.block_sum) and count of active terms, then loss's total: the mean.
template <typename T>
struct DmHingeSums {
  T sum, active;  // the terms added in increasing k, how many are positive
};
template <typename T, typename I>
struct DmHingeLoss {
  const T* q;
  const int32_t* gt;
  DmHingeGeom<I> g;
  DmGridSum<T, I> loss;  // blocks: the points; scale 1 / (N H W K^2)
  T* active;             // per point: its number of positive terms (the backward's coefficients)

  // Thread s of point's block: its slice (zeros from a point that does not take part, and
  // from threads past the point's slices, which leave the tree's sums unchanged).
  CVG_HD DmHingeSums<T> slice(I point, I s) const {
    T acc = T(0), cnt = T(0);
    if (s >= g.slices) return {acc, cnt};
    const DmHingeItem<I> it = dm_hinge_item(q, gt, g, point, s);
    if (it.gt_flat < 0) return {acc, cnt};
    const T* plane = q + point * g.k * g.k;
    const T at_gt = plane[it.gt_flat];
    dm_hinge_walk(plane, s, g.slices, g.k * g.k, [&](I k, T v) {
      const T t = dm_hinge_term(v, g, it.gy, it.gx, k, at_gt);
      acc += t;
      cnt += t > T(0) ? T(1) : T(0);
    });
    return {acc, cnt};
  }
};
static_assert(kDmHingeSlices == kDmGridBlock, "a hinge loss block is a grid-sum block");

// Backward: d loss / d Q[point, q] = (+1 for an active term's q, minus the point's number of
// active terms at the ground truth, whose own term is 0, never active) x grad / (N H W K^2),
// grad being the loss's gradient (grad null: the coefficient alone, for the differentiable
// composition create_graph needs, which multiplies by grad x (1 / terms) in T as here).
template <typename T, typename I>
struct DmHingeGrad {
  const T* q;
  const int32_t* gt;
  const T* active_count;  // per point
  const T* grad;          // one value, or null
  double inv_terms;       // 1 / (N H W K^2)
  DmHingeGeom<I> g;
  T* out;  // like q
  // Item l = point * spans + s: the scores first, then what the point's terms need.
  CVG_HD void operator()(I l) const {
    const I point = g.fspans.div(l), s = l - point * g.spans, kk = g.k * g.k;
    const T* plane = q + point * kk;
    T* o = out + point * kk;
    T v[kDmHingeSpan] = {};
    CVG_UNROLL
    for (int u = 0; u < kDmHingeSpan; ++u)
      if (s + u * g.spans < kk) v[u] = plane[s + u * g.spans];
    const DmHingeItem<I> it = dm_hinge_item(q, gt, g, point, s);
    const bool part = it.gt_flat >= 0;
    const T at_gt = part ? plane[it.gt_flat] : T(0);
    const T gp = grad ? grad[0] * static_cast<T>(inv_terms) : T(1);
    const T at_gt_coef = part ? -active_count[point] : T(0);
    CVG_UNROLL
    for (int u = 0; u < kDmHingeSpan; ++u) {
      const I k = s + u * g.spans;
      if (k >= kk) continue;
      T c = T(0);
      if (part)
        c = k == it.gt_flat ? at_gt_coef
                            : (dm_hinge_term(v[u], g, it.gy, it.gx, k, at_gt) > T(0) ? T(1) : T(0));
      o[k] = grad ? c * gp : c;
    }
  }
};

}  // namespace cvg
