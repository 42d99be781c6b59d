#pragma once
// Deep Matching: the correlation of descriptors into the 4-D score volume and its gradients
// (per-element math shared by deepmatch_cpu.cpp and deepmatch_cuda.cu; conventions in
// kernels/deepmatch.h and kernels/deepmatch_common_math.h).
#include "kernels/deepmatch_common_math.h"

namespace cvg {

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

}  // namespace cvg
