#pragma once
// Deep Matching: max pooling over q with switches, its gradient, and unpooling through the
// switches (per item, by 2 x 2 cells, and the CPU's whole point planes), shared by
// deepmatch_cpu.cpp and deepmatch_cuda.cu; conventions in kernels/deepmatch.h.
#include "kernels/deepmatch_common_math.h"

namespace cvg {

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

}  // namespace cvg
