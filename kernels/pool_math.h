#pragma once
// Window arithmetic and per-element math of the pooling ops, shared by pool_cpu.cpp and
// pool_cuda.cu (see kernels/pool.h for the conventions). Everything here works on one plane
// (one (n, c) pair) of a contiguous NCHW tensor; the callers add the plane offset.
//
// Along each axis, output o of a regular pool looks at the input positions
//     start + t * d,   t = 0 .. k-1,   start = o * s - p
// (kernel k, stride s, padding p, dilation d); positions outside [0, in) are padding, which max
// pooling treats as -inf (skipped) and average pooling treats as zeros. Output o of an adaptive
// pool looks at [floor(o * in / out), ceil((o + 1) * in / out)), PyTorch's windows.
#include <cstdint>

#include "core/fast_div.h"
#include "core/hd.h"

namespace cvg {

struct PoolAxis {
  int64_t in = 1, out = 1;             // input and output sizes along this axis
  int64_t k = 1, s = 1, p = 0, d = 1;  // kernel, stride, padding, dilation (regular pools)
  // Dividers by s and d (core/fast_div.h), made here on the host: the window arithmetic below
  // runs per element, where a 64-bit division is a ~70-instruction routine on a GPU.
  FastDiv fs, fd;

  PoolAxis() = default;
  PoolAxis(int64_t in_, int64_t out_, int64_t k_ = 1, int64_t s_ = 1, int64_t p_ = 0,
           int64_t d_ = 1)
      : in(in_), out(out_), k(k_), s(s_), p(p_), d(d_), fs(FastDiv::for_size(s_)),
        fd(FastDiv::for_size(d_)) {}
};

struct PoolGeometry {
  int64_t planes = 0;  // N * C
  PoolAxis h, w;
  bool adaptive = false;
  bool count_include_pad = true;  // average pooling: divide by the padded window size

  CVG_HD int64_t in_plane() const { return h.in * w.in; }
  CVG_HD int64_t out_plane() const { return h.out * w.out; }
};

// The in-range input positions of output o's window: begin, begin + step, ... (< end).
struct PoolTaps {
  int64_t begin, end, step;
};

CVG_HD PoolTaps pool_taps(const PoolAxis& a, int64_t o, bool adaptive) {
  if (adaptive) return {(o * a.in) / a.out, ((o + 1) * a.in + a.out - 1) / a.out, 1};
  const int64_t start = o * a.s - a.p;
  // The first tap at or after 0, and one past the last tap clipped to the input.
  const int64_t begin = start >= 0 ? start : start + a.fd.div(-start + a.d - 1) * a.d;
  const int64_t last = start + (a.k - 1) * a.d;
  const int64_t end = last + 1 < a.in ? last + 1 : a.in;
  return {begin, end, a.d};
}

// The outputs [begin, end) whose window can contain input position i (a superset when the
// kernel is dilated: then the taps of an output in the range may step over i).
struct PoolSpan {
  int64_t begin, end;
};

CVG_HD PoolSpan pool_covering(const PoolAxis& a, int64_t i, bool adaptive) {
  int64_t begin, end;
  if (adaptive) {
    // start(o) <= i  <=>  o <= ((i + 1) * out - 1) / in;   end(o) > i  <=>  o >= i * out / in.
    begin = (i * a.out) / a.in;
    end = ((i + 1) * a.out - 1) / a.in + 1;
  } else {
    // o * s - p <= i <= o * s - p + (k - 1) * d.
    const int64_t lo = i + a.p - (a.k - 1) * a.d;
    begin = lo <= 0 ? 0 : a.fs.div(lo + a.s - 1);
    end = a.fs.div(i + a.p) + 1;
  }
  return {begin, end < a.out ? end : a.out};
}

// ---- max pooling ---------------------------------------------------------------------------

// Whether tap value v replaces the running maximum `best`: strictly greater, or the first NaN
// (v != v: v is NaN, written without isnan so that host and device share the line).
template <typename T>
CVG_HD bool max_pool_beats(T v, T best) {
  return v > best || (v != v && best == best);
}

// Value and switch (plane-local index h * W + w) of output (oh, ow). The first maximum in
// row-major window order wins (strict >); a NaN beats every number, and the first NaN wins.
template <typename T>
CVG_HD void max_pool_at(const T* plane, const PoolGeometry& g, int64_t oh, int64_t ow, T* value,
                        int32_t* sw) {
  const PoolTaps th = pool_taps(g.h, oh, g.adaptive), tw = pool_taps(g.w, ow, g.adaptive);
  int64_t best_i = th.begin * g.w.in + tw.begin;
  T best = plane[best_i];
  for (int64_t ih = th.begin; ih < th.end; ih += th.step) {
    for (int64_t iw = tw.begin; iw < tw.end; iw += tw.step) {
      const int64_t i = ih * g.w.in + iw;
      const T v = plane[i];
      if (max_pool_beats(v, best)) {
        best = v;
        best_i = i;
      }
    }
  }
  *value = best;
  *sw = static_cast<int32_t>(best_i);
}

// Gradient of input (ih, iw): the sum of grad_out over the outputs whose switch points at it,
// in increasing output order (a gather: one writer per input, deterministic).
template <typename T>
CVG_HD T max_pool_grad_at(const T* grad_plane, const int32_t* sw_plane, const PoolGeometry& g,
                          int64_t ih, int64_t iw) {
  const PoolSpan sh = pool_covering(g.h, ih, g.adaptive), sw = pool_covering(g.w, iw, g.adaptive);
  const int64_t me = ih * g.w.in + iw;
  T acc = T(0);
  for (int64_t oh = sh.begin; oh < sh.end; ++oh)
    for (int64_t ow = sw.begin; ow < sw.end; ++ow) {
      const int64_t o = oh * g.w.out + ow;
      if (sw_plane[o] == me) acc += grad_plane[o];
    }
  return acc;
}

// ---- average pooling -----------------------------------------------------------------------

// The number output o's sum is divided by, along one axis. With count_include_pad the window
// counts its padded positions, but not the part that hangs past the right padding (ceil_mode
// can place a window there), as PyTorch does.
CVG_HD int64_t pool_axis_divisor(const PoolAxis& a, int64_t o, bool adaptive,
                                 bool count_include_pad) {
  const PoolTaps t = pool_taps(a, o, adaptive);
  if (adaptive || !count_include_pad) return t.end - t.begin;  // dilation is 1 for avg pools
  const int64_t start = o * a.s - a.p;
  const int64_t stop = start + a.k < a.in + a.p ? start + a.k : a.in + a.p;
  return stop - start;
}

template <typename T>
CVG_HD T avg_pool_divisor(const PoolGeometry& g, int64_t oh, int64_t ow) {
  return static_cast<T>(pool_axis_divisor(g.h, oh, g.adaptive, g.count_include_pad) *
                        pool_axis_divisor(g.w, ow, g.adaptive, g.count_include_pad));
}

template <typename T>
CVG_HD T avg_pool_at(const T* plane, const PoolGeometry& g, int64_t oh, int64_t ow) {
  const PoolTaps th = pool_taps(g.h, oh, g.adaptive), tw = pool_taps(g.w, ow, g.adaptive);
  T acc = T(0);
  for (int64_t ih = th.begin; ih < th.end; ih += th.step)
    for (int64_t iw = tw.begin; iw < tw.end; iw += tw.step) acc += plane[ih * g.w.in + iw];
  return acc / avg_pool_divisor<T>(g, oh, ow);
}

// Gradient of input (ih, iw): sum of grad_out[o] / divisor(o) over the outputs covering it.
// Average pools have dilation 1, so every output of the covering span really covers it.
template <typename T>
CVG_HD T avg_pool_grad_at(const T* grad_plane, const PoolGeometry& g, int64_t ih, int64_t iw) {
  const PoolSpan sh = pool_covering(g.h, ih, g.adaptive), sw = pool_covering(g.w, iw, g.adaptive);
  T acc = T(0);
  for (int64_t oh = sh.begin; oh < sh.end; ++oh)
    for (int64_t ow = sw.begin; ow < sw.end; ++ow)
      acc += grad_plane[oh * g.w.out + ow] / avg_pool_divisor<T>(g, oh, ow);
  return acc;
}

// ---- max unpooling -------------------------------------------------------------------------
// `winners` holds, per output position of a plane, the plane-local index of the input that
// writes it (the largest input index whose switch points there: the last writer in row-major
// input order), or -1 when no input does.

struct UnpoolGeometry {
  int64_t planes = 0;
  int64_t in_plane = 0;   // elements of one plane of x (and of switches)
  int64_t out_plane = 0;  // H * W of output_size
};

template <typename T>
CVG_HD T unpool_value_at(const T* x_plane, const int32_t* winners_plane, int64_t p) {
  const int32_t k = winners_plane[p];
  return k >= 0 ? x_plane[k] : T(0);
}

// Gradient of input k: grad_out at its switch if it won that position, else 0 (its value was
// overwritten and never reached the output).
template <typename T>
CVG_HD T unpool_grad_at(const T* grad_plane, const int32_t* sw_plane,
                        const int32_t* winners_plane, int64_t k) {
  const int32_t p = sw_plane[k];
  return winners_plane[p] == k ? grad_plane[p] : T(0);
}

}  // namespace cvg
