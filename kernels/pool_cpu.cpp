// CPU loops for the pooling ops. Each loop runs over the elements it writes (outputs for the
// forward passes, inputs for the gathers of the backward passes), splits them across threads
// with parallel_for and calls the per-element math of kernels/pool_math.h, the code the CUDA
// kernels run. Every element has one writer, so results do not depend on the thread count.
// Where the common shapes allow (windows wholly inside the input, 2 x 2 stride-2 pools, the
// switches of a non-overlapping pool), fast paths beside the general loops reorganise the same
// computation so that it vectorises; each says why its result is the per-element rule's, bit
// for bit, and tests/ops/test_pool.cpp checks them against that rule.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "kernels/pool.h"

namespace cvg {

namespace {

// Elements per chunk: a window costs a few to a few dozen loads.
constexpr int64_t kGrain = 4096;

// The smallest flat position of a bad switch seen by any thread (-1: none); a minimum does not
// depend on which thread finds which candidate.
class FirstBad {
 public:
  void note(int64_t pos) {
    int64_t cur = first_.load();
    while ((cur < 0 || pos < cur) && !first_.compare_exchange_weak(cur, pos)) {
    }
  }
  int64_t get() const { return first_.load(); }

 private:
  std::atomic<int64_t> first_{-1};
};

// Calls write(p, k) for the inputs k of one plane in increasing order, p = switch[k] (the
// sequential scatter of the unpooling: a later k overwrites an earlier one). Stops at the first
// switch outside [0, out_plane), notes its flat position and returns false.
template <typename Write>
bool scatter_plane(const int32_t* sw, int64_t plane, const UnpoolGeometry& g, FirstBad& bad,
                   Write&& write) {
  for (int64_t k = 0; k < g.in_plane; ++k) {
    const int64_t p = sw[k];
    if (p < 0 || p >= g.out_plane) {
      bad.note(plane * g.in_plane + k);
      return false;
    }
    write(p, k);
  }
  return true;
}

// Planes per chunk of the unpooling loops, which run whole planes (the scatter of a plane must
// run in input order so that the last writer wins).
int64_t unpool_grain(const UnpoolGeometry& g) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(g.in_plane, 1));
}

// The column windows of a regular or adaptive pool, computed once per call instead of per
// output, and the range [lead, full) of output columns whose window is 2 wide, undilated and
// wholly inside the input (only the first and last columns can be clipped by padding or
// ceil_mode). The fast paths below run that range with two fixed loads per window row, which
// the compiler can keep in registers and vectorise.
struct ColumnPlan {
  std::vector<PoolTaps> taps;
  int64_t lead = 0, full = 0;
};

ColumnPlan plan_columns(const PoolGeometry& g) {
  ColumnPlan c;
  c.taps.resize(static_cast<size_t>(g.w.out));
  for (int64_t ow = 0; ow < g.w.out; ++ow) c.taps[ow] = pool_taps(g.w, ow, g.adaptive);
  if (!g.adaptive && g.w.k == 2 && g.w.d == 1) {
    auto whole = [&](int64_t ow) {
      return c.taps[ow].begin == ow * g.w.s - g.w.p && c.taps[ow].end == c.taps[ow].begin + 2;
    };
    while (c.lead < g.w.out && !whole(c.lead)) ++c.lead;
    c.full = c.lead;
    while (c.full < g.w.out && whole(c.full)) ++c.full;
  }
  return c;
}

// Outputs [lead, full) of one output row of a pool whose column windows are 2 wide at stride 2,
// undilated and wholly inside the input (column c = 2 ow - pad), and whose row window is the
// two whole input rows top, top + 1. The result is max_pool_at's: the first maximum in the
// row-major order a b / e f of the window, a NaN beating every number and the first NaN
// winning. max_pool_beats is a strict total preorder (NaN above every number, equal numbers
// tied), and the first maximum of a sequence is the first maximum of its halves' first maxima
// with the left one kept on a tie, so the pairs (a, b) and (e, f) are settled independently
// and then against each other. Without the loop-carried running maximum of the sequential
// scan, and with the switch built from 32-bit offsets, the loop is branch-free selects over
// lanes of the same width, which the compiler vectorises (it was a chain of unpredictable
// branches on random data).
template <typename T>
void max_pool_2x2s2_row(const T* plane, int64_t top, int64_t iw_n, int64_t pad, int64_t lead,
                        int64_t full, T* v, int32_t* sw) {
  const T* r0 = plane + top * iw_n;
  const T* r1 = r0 + iw_n;
  // Plane-local indices fit int32 (checked by the op: H * W < 2^31).
  const int32_t base = static_cast<int32_t>(top * iw_n - pad), w32 = static_cast<int32_t>(iw_n);
  const int32_t n = static_cast<int32_t>(full - lead);
  r0 += 2 * lead - pad;
  r1 += 2 * lead - pad;
  v += lead;
  sw += lead;
  const int32_t first = base + 2 * static_cast<int32_t>(lead);
  for (int32_t j = 0; j < n; ++j) {
    const T a = r0[2 * j], b = r0[2 * j + 1], e = r1[2 * j], f = r1[2 * j + 1];
    const bool tb = max_pool_beats(b, a), tf = max_pool_beats(f, e);
    const T upper = tb ? b : a, lower = tf ? f : e;
    const int32_t i_upper = tb ? 1 : 0, i_lower = tf ? w32 + 1 : w32;
    const bool tl = max_pool_beats(lower, upper);
    v[j] = tl ? lower : upper;
    sw[j] = first + 2 * j + (tl ? i_lower : i_upper);
  }
}

// Input row ih of the gradient of a max pool whose column windows are 2 wide at stride 2 and
// whose row windows are undilated: max_pool_grad_at's gather, written as one streaming pass
// over the row (no zero fill followed by scattered additions). The output rows covering ih
// are exactly pool_covering's span (no dilation), and each column of the fast range
// [2 lead - pad, 2 full - pad) lies in exactly one column window, ow = (c + pad) / 2, so the
// gather is a sum over the covering rows, in increasing output order as in max_pool_grad_at,
// of grad_out where the switch names the column and +0 elsewhere. Adding +0 leaves every sum
// unchanged (it starts at +0, so it is never -0, the one value +0 would change), so the bits
// are the reference's; the selects (in the forms GCC if-converts) keep the loops branch-free
// and vectorised. The few columns outside the fast range (padding, ceil_mode, an odd last
// column) run the reference.
template <typename T>
void max_pool_grad_pairs_row(const T* go, const int32_t* sw, const PoolGeometry& g,
                             int64_t lead, int64_t full, int64_t ih, T* row) {
  const int64_t iw_n = g.w.in, ow_n = g.w.out, pad = g.w.p;
  const PoolSpan span = pool_covering(g.h, ih, false);
  const int64_t c0 = 2 * lead - pad, c1 = 2 * full - pad;
  for (int64_t iw = 0; iw < c0; ++iw) row[iw] = max_pool_grad_at(go, sw, g, ih, iw);
  for (int64_t iw = c1; iw < iw_n; ++iw) row[iw] = max_pool_grad_at(go, sw, g, ih, iw);
  T* r = row + c0;
  const int32_t n = static_cast<int32_t>(full - lead);
  if (span.begin >= span.end) {
    std::fill(r, r + 2 * n, T(0));
    return;
  }
  // Plane-local indices fit int32 (checked by the op: H * W < 2^31).
  const int32_t me = static_cast<int32_t>(ih * iw_n + c0);
  for (int64_t oh = span.begin; oh < span.end; ++oh) {
    const T* gr = go + oh * ow_n + lead;
    const int32_t* sr = sw + oh * ow_n + lead;
    if (oh == span.begin) {
      for (int32_t j = 0; j < n; ++j) {
        const int32_t s = sr[j] - (me + 2 * j);
        const T v = T(0) + gr[j], zero = T(0);
        r[2 * j] = s == 0 ? v : zero;
        r[2 * j + 1] = s == 1 ? v : zero;
      }
    } else {
      for (int32_t j = 0; j < n; ++j) {
        const int32_t s = sr[j] - (me + 2 * j);
        const T v = gr[j];
        T a = T(0), z = T(0);
        if (s == 0) a = v;
        if (s == 1) z = v;
        r[2 * j] += a;
        r[2 * j + 1] += z;
      }
    }
  }
}

// The outputs [begin, end) of a regular pool whose column windows lie wholly inside the input
// (all k taps in range); only the first and last few columns can be clipped by padding or
// ceil_mode. The range is contiguous: "first tap >= 0" and "last tap < W" are both monotone in
// ow. Adaptive pools have windows of varying width: none.
PoolSpan whole_columns(const PoolGeometry& g) {
  if (g.adaptive) return {0, 0};
  const PoolAxis& a = g.w;
  auto whole = [&](int64_t ow) {
    const int64_t start = ow * a.s - a.p;
    return start >= 0 && start + (a.k - 1) * a.d < a.in;
  };
  PoolSpan r{0, 0};
  while (r.begin < a.out && !whole(r.begin)) ++r.begin;
  r.end = r.begin;
  while (r.end < a.out && whole(r.end)) ++r.end;
  return r;
}

// Outputs [lo, hi) of output row oh (input rows th) whose column windows lie wholly inside the
// input: max_pool_at's scan, reorganised to vectorise across the output row. For each input
// row of the window, a pass over the outputs finds the first maximum of that row's k taps in
// registers and merges it into the running maxima and switches (v and sw, one row, in cache),
// keeping the earlier one on a tie. As in max_pool_2x2s2_row, the first maximum of a
// sequence is the first maximum of its parts' first maxima with the left one kept on a tie
// (max_pool_beats is a strict total preorder), so the result is max_pool_at's, bit for bit.
// Each pass is strided loads, compares and selects, branch-free; S and K are the column stride
// and kernel when known at compile time (2 and 2 or 3, the common pools), 0 to read them
// from g. The first row initialises v and sw.
template <typename T, int S, int K>
void max_pool_row_by_rows(const T* plane, const PoolGeometry& g, const PoolTaps& th, int64_t lo,
                          int64_t hi, T* v, int32_t* sw) {
  const int64_t s = S > 0 ? S : g.w.s, k = K > 0 ? K : g.w.k, d = g.w.d, iw_n = g.w.in;
  const int32_t n = static_cast<int32_t>(hi - lo), s32 = static_cast<int32_t>(s),
                d32 = static_cast<int32_t>(d);
  v += lo;
  sw += lo;
  const int64_t c0 = lo * s - g.w.p;  // the first tap column of output lo
  for (int64_t ih = th.begin; ih < th.end; ih += th.step) {
    const T* src = plane + ih * iw_n + c0;
    // Plane-local indices fit int32 (checked by the op: H * W < 2^31).
    const int32_t base = static_cast<int32_t>(ih * iw_n + c0);
    // The first maximum m (at plane index mi) of this row's taps of output j.
    auto row_max = [&](int32_t j, T& m, int32_t& mi) {
      m = src[j * s];
      mi = base + j * s32;
      for (int32_t t = 1; t < k; ++t) {
        const T x = src[j * s + t * d];
        const bool b = max_pool_beats(x, m);
        m = b ? x : m;
        mi = b ? base + j * s32 + t * d32 : mi;
      }
    };
    if (ih == th.begin) {
      for (int32_t j = 0; j < n; ++j) row_max(j, v[j], sw[j]);
      continue;
    }
    for (int32_t j = 0; j < n; ++j) {
      T m;
      int32_t mi;
      row_max(j, m, mi);
      const T best = v[j];
      const bool b = max_pool_beats(m, best);
      v[j] = b ? m : best;
      sw[j] = b ? mi : sw[j];
    }
  }
}

}  // namespace

void max_pool2d_cpu(const Tensor& x, const PoolGeometry& g, const Tensor& values,
                    const Tensor& switches) {
  dispatch_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* pv = values.data<T>();
    int32_t* ps = switches.data<int32_t>();
    const int64_t ow_n = g.w.out, oh_n = g.h.out, ip = g.in_plane();
    const int64_t iw_n = g.w.in;
    const PoolSpan whole = whole_columns(g);
    // Column windows 2 wide at stride 2 (the common 2 x 2 pool): rows whose window has two
    // whole input rows take max_pool_2x2s2_row; other rows and pools max_pool_row_by_rows.
    const bool pair_rows = !g.adaptive && g.w.k == 2 && g.w.s == 2 && g.w.d == 1;
    // Whole output rows per index: the plane and the row cost two divisions per row instead of
    // per output (with 2 x 2 windows those divisions cost as much as the four loads).
    parallel_for(g.planes * oh_n, std::max<int64_t>(1, kGrain / std::max<int64_t>(ow_n, 1)),
                 [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* plane = px + (r / oh_n) * ip;
        const int64_t oh = r % oh_n;
        T* v = pv + r * ow_n;
        int32_t* sw = ps + r * ow_n;
        for (int64_t ow = 0; ow < whole.begin; ++ow) max_pool_at(plane, g, oh, ow, v + ow, sw + ow);
        const PoolTaps th = pool_taps(g.h, oh, g.adaptive);
        if (pair_rows && th.end - th.begin == 2 && th.step == 1)
          max_pool_2x2s2_row(plane, th.begin, iw_n, g.w.p, whole.begin, whole.end, v, sw);
        else if (g.w.s == 2 && g.w.k == 2)
          max_pool_row_by_rows<T, 2, 2>(plane, g, th, whole.begin, whole.end, v, sw);
        else if (g.w.s == 2 && g.w.k == 3)
          max_pool_row_by_rows<T, 2, 3>(plane, g, th, whole.begin, whole.end, v, sw);
        else
          max_pool_row_by_rows<T, 0, 0>(plane, g, th, whole.begin, whole.end, v, sw);
        for (int64_t ow = whole.end; ow < ow_n; ++ow)
          max_pool_at(plane, g, oh, ow, v + ow, sw + ow);
      }
    });
  });
}

// The CPU runs the gather of max_pool_grad_at as a scatter per plane: zero the plane, then add
// each output's gradient at its switch, in increasing output order. Every input receives the
// same additions in the same order as in the gather (so the bits match the CUDA kernel's), but
// the work is one visit per output instead of a covering-window search per input, which costs
// several integer divisions per input element. A switch outside its output's window adds
// nothing, as in the gather. Planes are independent, so threads split them.
void max_pool2d_backward_cpu(const Tensor& grad_out, const Tensor& switches,
                             const PoolGeometry& g, const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = grad_out.data<T>();
    const int32_t* ps = switches.data<int32_t>();
    T* pi = grad_in.data<T>();
    const int64_t iw_n = g.w.in, ow_n = g.w.out, oh_n = g.h.out, op = g.out_plane(),
                  ip = g.in_plane();
    // The modulo runs only for dilated (step > 1) windows: one division per output, not three.
    auto inside = [](const PoolTaps& t, int64_t i) {
      return i >= t.begin && i < t.end && (t.step == 1 || (i - t.begin) % t.step == 0);
    };
    // Whether plane index idx lies in the window th x tw. Undilated windows are tested row by
    // row (a window has few rows), which avoids the 64-bit division idx / W: that division was
    // most of this loop's time.
    auto in_window = [&](int64_t idx, const PoolTaps& th, const PoolTaps& tw) {
      if (th.step == 1 && tw.step == 1) {
        if (idx < th.begin * iw_n || idx >= th.end * iw_n) return false;
        for (int64_t row = th.begin * iw_n; row < th.end * iw_n; row += iw_n)
          if (idx - row >= tw.begin && idx - row < tw.end) return true;
        return false;
      }
      const int64_t ih = idx / iw_n;
      return inside(th, ih) && inside(tw, idx - ih * iw_n);
    };
    const ColumnPlan cols = plan_columns(g);
    // 2-wide column windows at stride 2 and undilated rows: the gather row by row (below).
    const bool pair_cols = !g.adaptive && g.w.k == 2 && g.w.s == 2 && g.w.d == 1 && g.h.d == 1;
    parallel_for(g.planes, std::max<int64_t>(1, kGrain / std::max<int64_t>(ip, 1)),
                 [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        T* gi = pi + plane * ip;
        const T* go = pg + plane * op;
        const int32_t* sw = ps + plane * op;
        if (pair_cols) {
          for (int64_t ih = 0; ih < g.h.in; ++ih)
            max_pool_grad_pairs_row(go, sw, g, cols.lead, cols.full, ih, gi + ih * iw_n);
          continue;
        }
        std::fill(gi, gi + ip, T(0));
        for (int64_t oh = 0; oh < oh_n; ++oh) {
          const PoolTaps th = pool_taps(g.h, oh, g.adaptive);
          for (int64_t ow = 0; ow < ow_n; ++ow) {
            const int64_t o = oh * ow_n + ow, idx = sw[o];
            if (idx < 0 || idx >= ip) continue;
            if (in_window(idx, th, cols.taps[ow])) gi[idx] += go[o];
          }
        }
      }
    });
  });
}

// Row by row: the taps and divisor of each column are computed once per call and those of each
// row once per row, instead of per output with a division to split the flat index (the
// per-output window arithmetic cost more than the four loads of a 2 x 2 window). The sums run
// in the order of avg_pool_at (from 0, row-major over the window) and are divided by the same
// divisor, so the bits match it and the CUDA kernel.
void avg_pool2d_cpu(const Tensor& x, const PoolGeometry& g, const Tensor& out) {
  dispatch_floating(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const int64_t ow_n = g.w.out, oh_n = g.h.out, iw_n = g.w.in, ip = g.in_plane();
    const ColumnPlan plan = plan_columns(g);
    const std::vector<PoolTaps>& cols = plan.taps;
    const int64_t lead = plan.lead, full = plan.full;
    std::vector<int64_t> col_div(ow_n);
    for (int64_t ow = 0; ow < ow_n; ++ow)
      col_div[ow] = pool_axis_divisor(g.w, ow, g.adaptive, g.count_include_pad);
    // With one divisor for the whole fast range (always, without count_include_pad = false and
    // padding) the division takes a constant, which keeps the loop free of int -> float casts.
    bool same_div = true;
    for (int64_t ow = lead; ow < full; ++ow) same_div = same_div && col_div[ow] == col_div[lead];
    parallel_for(g.planes * oh_n, std::max<int64_t>(1, kGrain / std::max<int64_t>(ow_n, 1)),
                 [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* plane = px + (r / oh_n) * ip;
        const int64_t oh = r % oh_n;
        const PoolTaps th = pool_taps(g.h, oh, g.adaptive);
        const int64_t row_div = pool_axis_divisor(g.h, oh, g.adaptive, g.count_include_pad);
        T* o = po + r * ow_n;
        auto general = [&](int64_t ow) {
          const PoolTaps tw = cols[ow];
          T acc = T(0);
          for (int64_t ih = th.begin; ih < th.end; ih += th.step)
            for (int64_t iw = tw.begin; iw < tw.end; iw += tw.step) acc += plane[ih * iw_n + iw];
          o[ow] = acc / static_cast<T>(row_div * col_div[ow]);
        };
        for (int64_t ow = 0; ow < lead; ++ow) general(ow);
        if (th.end - th.begin == 2 && th.step == 1) {
          // 2 x 2 windows wholly inside the input.
          const T* r0 = plane + th.begin * iw_n;
          const T* r1 = r0 + iw_n;
          const int64_t s = g.w.s, p = g.w.p;
          auto sum4 = [&](int64_t c) { return (((T(0) + r0[c]) + r0[c + 1]) + r1[c]) + r1[c + 1]; };
          if (same_div && lead < full) {
            const T div = static_cast<T>(row_div * col_div[lead]);
            for (int64_t ow = lead; ow < full; ++ow) o[ow] = sum4(ow * s - p) / div;
          } else {
            for (int64_t ow = lead; ow < full; ++ow)
              o[ow] = sum4(ow * s - p) / static_cast<T>(row_div * col_div[ow]);
          }
        } else {
          for (int64_t ow = lead; ow < full; ++ow) general(ow);
        }
        for (int64_t ow = full; ow < ow_n; ++ow) general(ow);
      }
    });
  });
}

void avg_pool2d_backward_cpu(const Tensor& grad_out, const PoolGeometry& g,
                             const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = grad_out.data<T>();
    T* pi = grad_in.data<T>();
    const int64_t iw_n = g.w.in, op = g.out_plane(), ip = g.in_plane();
    parallel_for(g.planes * ip, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t l = b; l < e; ++l) {
        const int64_t plane = l / ip, i = l % ip;
        pi[l] = avg_pool_grad_at(pg + plane * op, g, i / iw_n, i % iw_n);
      }
    });
  });
}

int64_t max_unpool2d_winners_cpu(const Tensor& switches, const UnpoolGeometry& g,
                                 const Tensor& winners) {
  const int32_t* ps = switches.data<int32_t>();
  int32_t* pw = winners.data<int32_t>();
  FirstBad first_bad;
  parallel_for(g.planes, unpool_grain(g), [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      int32_t* w = pw + plane * g.out_plane;
      const int32_t* s = ps + plane * g.in_plane;
      std::fill(w, w + g.out_plane, -1);
      scatter_plane(s, plane, g, first_bad,
                    [&](int64_t p, int64_t k) { w[p] = static_cast<int32_t>(k); });
    }
  });
  return first_bad.get();
}

// Plane by plane, so that the flat index needs no division per element to find its plane.
// (The CPU's max_unpool2d runs max_unpool2d_scatter_cpu below; this winners-based kernel is the
// CUDA algorithm, kept as the reference the tests compare the scatter with.)
void max_unpool2d_cpu(const Tensor& x, const Tensor& winners, const UnpoolGeometry& g,
                      const Tensor& out) {
  dispatch_floating(x.dtype(), "max_unpool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const int32_t* pw = winners.data<int32_t>();
    T* po = out.data<T>();
    const int64_t op = g.out_plane, ip = g.in_plane;
    parallel_for(g.planes, unpool_grain(g), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        const T* xp = px + plane * ip;
        const int32_t* wp = pw + plane * op;
        T* o = po + plane * op;
        for (int64_t p = 0; p < op; ++p) o[p] = unpool_value_at(xp, wp, p);
      }
    });
  });
}

void max_unpool2d_backward_cpu(const Tensor& grad_out, const Tensor& switches,
                               const Tensor& winners, const UnpoolGeometry& g,
                               const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "max_unpool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = grad_out.data<T>();
    const int32_t* ps = switches.data<int32_t>();
    const int32_t* pw = winners.data<int32_t>();
    T* pi = grad_in.data<T>();
    const int64_t op = g.out_plane, ip = g.in_plane;
    // Plane by plane, as the forward.
    parallel_for(g.planes, unpool_grain(g), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        const T* go = pg + plane * op;
        const int32_t* sp = ps + plane * ip;
        const int32_t* wp = pw + plane * op;
        T* gi = pi + plane * ip;
        for (int64_t k = 0; k < ip; ++k) gi[k] = unpool_grad_at(go, sp, wp, k);
      }
    });
  });
}

// The CPU's max_unpool2d: zero each output plane, then write x[k] at switch[k] for k in input
// order. The last writer in row-major input order wins without computing winners, and the work
// is one visit per input (a quarter of the output for 2 x 2 windows) instead of a pass filling a
// winners tensor of the output's size and a gather over every output position.
int64_t max_unpool2d_scatter_cpu(const Tensor& x, const Tensor& switches,
                                 const UnpoolGeometry& g, const Tensor& out) {
  FirstBad first_bad;
  dispatch_floating(x.dtype(), "max_unpool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const int32_t* ps = switches.data<int32_t>();
    T* po = out.data<T>();
    const int64_t op = g.out_plane, ip = g.in_plane;
    parallel_for(g.planes, unpool_grain(g), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        const T* xp = px + plane * ip;
        const int32_t* sp = ps + plane * ip;
        T* o = po + plane * op;
        std::fill(o, o + op, T(0));
        scatter_plane(sp, plane, g, first_bad, [&](int64_t p, int64_t k) { o[p] = xp[k]; });
      }
    });
  });
  return first_bad.get();
}

namespace {

// The tiling that the switches of a non-overlapping pool respect: input (i, j) of an h x w
// plane owns the th x tw tile of output rows [i th, i th + th) and columns [j tw, j tw + tw)
// of the H x W output plane, th = H / h and tw = W / w (a 2 x 2 max pool of an H x W plane,
// floor mode, gives th = tw = 2). The tiles are disjoint, so when every switch of a plane lies
// in its input's tile the switches are distinct and every input is the last (only) writer of
// its position: the gradient is the plain gather grad_out[switch[k]], with no owner pass.
struct UnpoolTiles {
  bool usable = false;
  int32_t W = 0, th = 0, tw = 0;
  // corner[k]: the top-left output position of input k's tile, the same for every plane.
  std::vector<int32_t> corner;
};

UnpoolTiles unpool_tiles(const Tensor& grad_out, const Tensor& switches, const UnpoolGeometry& g) {
  UnpoolTiles t;
  if (grad_out.dim() != 4 || switches.dim() != 4) return t;
  const int64_t h = switches.shape()[2], w = switches.shape()[3];
  const int64_t H = grad_out.shape()[2], W = grad_out.shape()[3];
  // Plane sizes as the geometry says, no empty plane, at least one output per input along
  // each axis, and 32-bit offsets (the tile test below runs in int32 lanes).
  if (h * w != g.in_plane || H * W != g.out_plane || h == 0 || w == 0 || H < h || W < w ||
      g.out_plane > INT32_MAX)
    return t;
  t.usable = true;
  t.W = static_cast<int32_t>(W);
  t.th = static_cast<int32_t>(H / h);
  t.tw = static_cast<int32_t>(W / w);
  t.corner.resize(static_cast<size_t>(g.in_plane));
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j)
      t.corner[i * w + j] = static_cast<int32_t>(i * t.th * W + j * t.tw);
  return t;
}

// Whether the switches s[0 .. n) of a plane all lie in their tiles (TH = t.th when it is known
// at compile time, 0 otherwise). One flat loop over the plane, against the precomputed
// corners: planes of small inputs (12 x 12) made a loop per row mostly overhead. Offsets are
// unsigned: with s >= 0 checked, the difference d to the tile's corner is exact, and
// "0 <= d - r W < tw" is one unsigned comparison.
template <int TH>
bool unpool_in_tiles(const int32_t* s, const UnpoolTiles& t, int64_t n) {
  const int32_t th = TH > 0 ? TH : t.th;
  const uint32_t tw = t.tw, W = t.W;
  const int32_t* corner = t.corner.data();
  // Flags as unsigned ints rather than bools: GCC vectorises the loop for TH = 2 then.
  unsigned ok = 1;
  for (int64_t k = 0; k < n; ++k) {
    const uint32_t d = static_cast<uint32_t>(s[k]) - static_cast<uint32_t>(corner[k]);
    unsigned in = 0;
    for (int32_t r = 0; r < th; ++r) in |= unsigned(d - static_cast<uint32_t>(r) * W < tw);
    ok &= unsigned(s[k] >= 0) & in;
  }
  return ok != 0;
}

// The tiled gradient of one plane of n inputs: the switches are tested, then gathered (the
// test comes first so that the gather reads only inside the plane). Returns false, writing
// nothing, when a switch lies outside its tile; the caller then runs the general rule.
template <typename T>
bool unpool_grad_tiled_plane(const T* go, const int32_t* sp, const UnpoolTiles& t, int64_t n,
                             T* gi) {
  const bool ok = t.th == 2 ? unpool_in_tiles<2>(sp, t, n) : unpool_in_tiles<0>(sp, t, n);
  if (!ok) return false;
  for (int64_t k = 0; k < n; ++k) gi[k] = go[sp[k]];
  return true;
}

}  // namespace

// The CPU's max_unpool2d_backward: d x[k] = grad_out[switch[k]] when k is the last input of its
// plane with that switch, else 0 (unpool_grad_at's rule). Which input is last comes from a
// plane-sized scratch array, written in input order (owner[switch[k]] = k) and then read back;
// it is read only at switches of the same plane, all of which the first pass wrote, so it needs
// no clearing. The scratch stays in cache, unlike a winners tensor of the whole output.
// Planes whose switches all lie in their tiles (see UnpoolTiles: switches of a non-overlapping
// max pool) skip the owner pass: there every input is its position's only writer.
int64_t max_unpool2d_backward_scatter_cpu(const Tensor& grad_out, const Tensor& switches,
                                          const UnpoolGeometry& g, const Tensor& grad_in) {
  FirstBad first_bad;
  dispatch_floating(grad_out.dtype(), "max_unpool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = grad_out.data<T>();
    const int32_t* ps = switches.data<int32_t>();
    T* pi = grad_in.data<T>();
    const int64_t op = g.out_plane, ip = g.in_plane;
    const UnpoolTiles tiles = unpool_tiles(grad_out, switches, g);
    parallel_for(g.planes, unpool_grain(g), [&](int64_t b, int64_t e) {
      std::vector<int32_t> owner(static_cast<size_t>(op));
      for (int64_t plane = b; plane < e; ++plane) {
        const T* go = pg + plane * op;
        const int32_t* sp = ps + plane * ip;
        T* gi = pi + plane * ip;
        if (tiles.usable && unpool_grad_tiled_plane(go, sp, tiles, ip, gi)) continue;
        const bool ok = scatter_plane(sp, plane, g, first_bad, [&](int64_t p, int64_t k) {
          owner[p] = static_cast<int32_t>(k);
        });
        if (!ok) continue;
        for (int64_t k = 0; k < ip; ++k) gi[k] = unpool_grad_at(go, sp, owner.data(), k);
      }
    });
  });
  return first_bad.get();
}

}  // namespace cvg
