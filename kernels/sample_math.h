#pragma once
// Per-element math of grid_sample and the ops built on it (kernels/sample.h), shared by
// sample_cpu.cpp and sample_cuda.cu: mapping a grid value to a pixel coordinate, padding
// (border clamp, reflection), and the two taps per axis with their weights or derivatives.
//
// One axis at a time. A grid value g becomes the pixel coordinate
//     p = g * scale + shift                     (see sample_axis for scale and shift)
// then padding folds p into the image: Border clamps it to [0, size - 1], Reflection reflects it
// about the image edges and then clamps; Zeros leaves it, and taps outside [0, size) read 0.
// Bilinear reads the taps floor(p) and floor(p) + 1 with weights (1 - f, f), f = p - floor(p);
// Nearest reads the single tap nearbyint(p) (round half to even, as PyTorch).
//
// Derivatives. The sample is  sum_taps  wy(py) * wx(px) * x[tap], so its derivative in gx is the
// same sum with wx replaced by wx' * dpx/dgx. wx' is (-1, +1) (the taps and the mask of valid
// taps are piecewise constant), and dpx/dgx = scale * (padding's slope: 1, 0 where clamped, or
// -1 on a reflected stretch) is piecewise constant too. So the derivative of order k of the
// sample along one axis uses the weights
//     k = 0: (1 - f, f)      k = 1: (-d, +d), d = dp/dg      k >= 2: none (the weights are
// linear in f, the second derivative is zero wherever it exists)
// and Nearest has no derivative at all (order >= 1: no taps). The ops in sample.cpp evaluate the
// sample with derivative orders (order_x, order_y) in {0, 1}^2, which is what makes every
// gradient of grid_sample an op of the same two kernels again.
//
// Kinks (where those formulas are one-sided): p at an integer (the taps change), and for
// Border / Reflection the points where padding clamps or reflects. At a clamp the slope is
// taken as 0 (PyTorch's convention: the border counts as outside). A coordinate that is not
// finite samples zero with zero derivative.
#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace cvg {

enum class GridSampleMode { Bilinear, Nearest };
enum class GridPadding { Zeros, Border, Reflection };

// How grid values along one axis of an input of `size` pixels map to pixel coordinates.
struct SampleAxis {
  int64_t size = 1;
  double scale = 1, shift = 0;  // p = g * scale + shift
  // Reflection bounds, doubled (PyTorch's twice_low / twice_high): the coordinate is reflected
  // about lo2 / 2 and hi2 / 2.
  double lo2 = 0, hi2 = 0;
};

// Normalised coordinates in [-1, 1] (grid_sample): -1 and +1 are the centres of the edge pixels
// when align_corners, the outer edges of the edge pixels otherwise.
CVG_HD SampleAxis normalized_axis(int64_t size, bool align_corners) {
  SampleAxis a;
  a.size = size;
  if (align_corners) {
    a.scale = 0.5 * static_cast<double>(size - 1);
    a.lo2 = 0;
    a.hi2 = 2.0 * static_cast<double>(size - 1);
  } else {
    a.scale = 0.5 * static_cast<double>(size);
    a.lo2 = -1;
    a.hi2 = 2.0 * static_cast<double>(size) - 1;
  }
  a.shift = 0.5 * static_cast<double>(size - 1);
  return a;
}

// Pixel coordinates used as they are (flow_warp, interpolate): 0 is the centre of pixel 0.
CVG_HD SampleAxis pixel_axis(int64_t size) {
  SampleAxis a;
  a.size = size;
  a.lo2 = -1;
  a.hi2 = 2.0 * static_cast<double>(size) - 1;
  return a;
}

// The coordinate of output pixel i of n along one axis of a base grid (affine_grid, tps_grid):
// n points spread over [-1, 1] with the same align_corners meaning as grid_sample, so sampling
// at the base grid reproduces the input. A single point sits at 0.
CVG_HD double base_grid_coordinate(int64_t i, int64_t n, bool align_corners) {
  if (n <= 1) return 0.0;
  const double di = static_cast<double>(i), dn = static_cast<double>(n);
  return align_corners ? -1.0 + 2.0 * di / (dn - 1.0) : (2.0 * di + 1.0) / dn - 1.0;
}

struct SampleGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input N x C x H x W (contiguous)
  int64_t ho = 0, wo = 0;              // output rows and columns
  int64_t grid_stride[4] = {0, 0, 0, 0};  // grid N x Ho x Wo x 2, any strides (in elements)
  SampleAxis x, y;
  GridSampleMode mode = GridSampleMode::Bilinear;
  GridPadding padding = GridPadding::Zeros;
  int order_x = 0, order_y = 0;  // derivative orders of the sampled value (see above)

  CVG_HD int64_t in_plane() const { return h * w; }
  CVG_HD int64_t out_plane() const { return ho * wo; }
};

// Clamp to [0, size - 1]; *slope becomes 0 at and beyond the bounds (PyTorch's convention).
template <typename T>
CVG_HD T clip_coordinate(T p, int64_t size, T* slope) {
  const T hi = static_cast<T>(size - 1);
  if (p <= T(0)) { *slope = T(0); return T(0); }
  if (p >= hi) { *slope = T(0); return hi; }
  return p;
}

// Reflect p into [lo2 / 2, hi2 / 2]; *slope is multiplied by -1 on mirrored stretches.
template <typename T>
CVG_HD T reflect_coordinate(T p, double lo2, double hi2, T* slope) {
  using std::floor; using std::fmod;
  if (lo2 == hi2) { *slope = T(0); return T(0); }
  const T lo = static_cast<T>(lo2 / 2), span = static_cast<T>((hi2 - lo2) / 2);
  T d = p - lo;
  if (d < T(0)) { d = -d; *slope = -*slope; }
  const T extra = fmod(d, span);
  // The parity of the number of folds, in floating point: d / span may exceed any integer type.
  if (fmod(floor(d / span), T(2)) == T(0)) return extra + lo;
  *slope = -*slope;
  return span - extra + lo;
}

// The taps of one axis: positions i0 and i0 + 1, their weights, and whether each is read.
template <typename T>
struct AxisTaps {
  int64_t i0 = 0;
  T w[2] = {T(0), T(0)};
  bool in[2] = {false, false};
};

// floor(p) and nearbyint(p) (round half to even) for the p of axis_taps, which lies in
// [-2, size + 1]. The device uses its floor and nearbyint. On the host both are libm calls with
// the baseline x86-64 instruction set (no SSE4.1 rounding instruction), and they dominated the
// CPU sampling loops; there the truncating conversion to an integer, which is exact for such p,
// gives the same results.
template <typename T>
CVG_HD T sample_floor(T p) {
#ifdef __CUDA_ARCH__
  using std::floor;
  return floor(p);
#else
  const T t = static_cast<T>(static_cast<int64_t>(p));  // p rounded toward zero
  return t > p ? t - T(1) : t;
#endif
}

template <typename T>
CVG_HD int64_t sample_round_even(T p) {
#ifdef __CUDA_ARCH__
  using std::nearbyint;
  return static_cast<int64_t>(nearbyint(p));
#else
  const T f0 = sample_floor(p);
  const T d = p - f0;  // exact: p and floor(p) share their leading bits
  const int64_t i = static_cast<int64_t>(f0);
  // Up above one half, and on a tie when i is odd (a tie goes to the even neighbour); written
  // as arithmetic on the comparisons because, with a random grid, branches on d mispredict.
  const int64_t up =
      static_cast<int64_t>(d > T(0.5)) | (static_cast<int64_t>(d == T(0.5)) & (i & 1));
  return i + up;
#endif
}

template <typename T>
CVG_HD AxisTaps<T> axis_taps(T g, const SampleAxis& a, GridSampleMode mode, GridPadding padding,
                             int order) {
  AxisTaps<T> t;
  T p = g * static_cast<T>(a.scale) + static_cast<T>(a.shift);
  // Non-finite coordinates (NaN, +-inf: then p - p is NaN) read nothing, whatever the padding.
  if (!(p - p == T(0))) return t;
  T slope = static_cast<T>(a.scale);
  if (padding == GridPadding::Reflection) p = reflect_coordinate(p, a.lo2, a.hi2, &slope);
  if (padding != GridPadding::Zeros) p = clip_coordinate(p, a.size, &slope);
  // Far-away coordinates are pulled in to a point that still reads nothing, so that converting
  // to an integer below is always defined.
  const T limit = static_cast<T>(a.size + 1);
  if (p < T(-2)) p = T(-2);
  if (p > limit) p = limit;
  if (mode == GridSampleMode::Nearest) {
    if (order > 0) return t;
    t.i0 = sample_round_even(p);
    t.w[0] = T(1);
    t.in[0] = t.i0 >= 0 && t.i0 < a.size;
    return t;
  }
  if (order > 1) return t;
  const T f0 = sample_floor(p);
  const T f = p - f0;
  t.i0 = static_cast<int64_t>(f0);
  if (order == 0) {
    t.w[0] = T(1) - f;
    t.w[1] = f;
  } else {
    t.w[0] = -slope;
    t.w[1] = slope;
  }
  t.in[0] = t.i0 >= 0 && t.i0 < a.size;
  t.in[1] = t.i0 + 1 >= 0 && t.i0 + 1 < a.size;
  return t;
}

// axis_taps for Zeros padding and derivative order 0, the common case, without branches (host
// only: sample_cpu.cpp). With a random grid the branches of axis_taps on the coordinate are
// mispredicted often, and computing the taps was most of the CPU time of a grid_sample with few
// channels. The same arithmetic as axis_taps, so the same flags in[] and, for the taps read,
// the same positions and weights bit for bit (tests/ops/test_sample.cpp compares them): a
// non-finite coordinate becomes -2, which reads nothing, as axis_taps reads nothing for it.
template <typename T>
inline AxisTaps<T> axis_taps_zeros(T g, const SampleAxis& a, GridSampleMode mode) {
  AxisTaps<T> t;
  T p = g * static_cast<T>(a.scale) + static_cast<T>(a.shift);
  const T limit = static_cast<T>(a.size + 1);
  p = (p - p == T(0)) ? p : T(-2);
  p = p < T(-2) ? T(-2) : p;
  p = p > limit ? limit : p;
  if (mode == GridSampleMode::Nearest) {
    t.i0 = sample_round_even(p);
    t.w[0] = T(1);
  } else {
    const T f0 = sample_floor(p);
    const T f = p - f0;
    t.i0 = static_cast<int64_t>(f0);
    t.w[0] = T(1) - f;
    t.w[1] = f;
    t.in[1] = static_cast<uint64_t>(t.i0 + 1) < static_cast<uint64_t>(a.size);
  }
  t.in[0] = static_cast<uint64_t>(t.i0) < static_cast<uint64_t>(a.size);
  return t;
}

// Grid value k (0 = x, 1 = y) of output pixel (n, oy, ox).
template <typename T>
CVG_HD T grid_at(const T* grid, const SampleGeometry& g, int64_t n, int64_t oy, int64_t ox,
                 int k) {
  return grid[n * g.grid_stride[0] + oy * g.grid_stride[1] + ox * g.grid_stride[2] +
              k * g.grid_stride[3]];
}

// The taps of output pixel (n, oy, ox) with the given derivative orders.
template <typename T>
CVG_HD void pixel_taps(const T* grid, const SampleGeometry& g, int64_t n, int64_t oy, int64_t ox,
                       int order_x, int order_y, AxisTaps<T>* tx, AxisTaps<T>* ty) {
  *tx = axis_taps(grid_at(grid, g, n, oy, ox, 0), g.x, g.mode, g.padding, order_x);
  *ty = axis_taps(grid_at(grid, g, n, oy, ox, 1), g.y, g.mode, g.padding, order_y);
}

// sum over the taps of  wy * wx * plane[iy, ix]  (one H x W plane of width w), in the order
// (y0, x0), (y0, x1), (y1, x0), (y1, x1).
template <typename T>
CVG_HD T tap_sum(const T* plane, int64_t w, const AxisTaps<T>& tx, const AxisTaps<T>& ty) {
  T s = T(0);
  for (int j = 0; j < 2; ++j) {
    if (!ty.in[j]) continue;
    const T* row = plane + (ty.i0 + j) * w;
    for (int i = 0; i < 2; ++i)
      if (tx.in[i]) s += ty.w[j] * tx.w[i] * row[tx.i0 + i];
  }
  return s;
}

// The adjoint of tap_sum: plane[iy, ix] += wy * wx * v, same tap order.
template <typename T>
CVG_HD void tap_scatter(T* plane, int64_t w, const AxisTaps<T>& tx, const AxisTaps<T>& ty, T v) {
  for (int j = 0; j < 2; ++j) {
    if (!ty.in[j]) continue;
    T* row = plane + (ty.i0 + j) * w;
    for (int i = 0; i < 2; ++i)
      if (tx.in[i]) row[tx.i0 + i] += ty.w[j] * tx.w[i] * v;
  }
}

// Output pixel (n, oy, ox) of the sample with g's derivative orders: out[n, c, oy, ox] for every
// channel c. The taps are computed once and reused per channel.
template <typename T>
CVG_HD void sample_pixel_at(const T* x, const T* grid, const SampleGeometry& g, int64_t n,
                            int64_t oy, int64_t ox, T* out) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  AxisTaps<T> tx, ty;
  pixel_taps(grid, g, n, oy, ox, g.order_x, g.order_y, &tx, &ty);
  const T* xn = x + n * g.c * ip;
  T* on = out + n * g.c * op + oy * g.wo + ox;
  for (int64_t c = 0; c < g.c; ++c) on[c * op] = tap_sum(xn + c * ip, g.w, tx, ty);
}

// The same for output pixel l, a linear index over N x Ho x Wo.
template <typename T>
CVG_HD void sample_pixel(const T* x, const T* grid, const SampleGeometry& g, int64_t l, T* out) {
  const int64_t op = g.out_plane(), p = l % op;
  sample_pixel_at(x, grid, g, l / op, p / g.wo, p % g.wo, out);
}

// The gradient with respect to the grid of  sum_c grad_out * sample  at output pixel
// (n, oy, ox): the sample with one more derivative order along x (resp. y), weighted by grad_out
// and summed over the channels. Writes grad_grid[n, oy, ox, 0] and grad_grid[n, oy, ox, 1]
// (N x Ho x Wo x 2, contiguous).
template <typename T>
CVG_HD void grid_grad_pixel_at(const T* grad_out, const T* x, const T* grid,
                               const SampleGeometry& g, int64_t n, int64_t oy, int64_t ox,
                               T* grad_grid) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  const int64_t p = oy * g.wo + ox, l = n * op + p;
  AxisTaps<T> tx0, ty0, tx1, ty1;
  pixel_taps(grid, g, n, oy, ox, g.order_x, g.order_y, &tx0, &ty0);
  pixel_taps(grid, g, n, oy, ox, g.order_x + 1, g.order_y + 1, &tx1, &ty1);
  const T* xn = x + n * g.c * ip;
  const T* gn = grad_out + n * g.c * op + p;
  T gx = T(0), gy = T(0);
  for (int64_t c = 0; c < g.c; ++c) {
    const T* plane = xn + c * ip;
    const T go = gn[c * op];
    gx += go * tap_sum(plane, g.w, tx1, ty0);
    gy += go * tap_sum(plane, g.w, tx0, ty1);
  }
  grad_grid[2 * l] = gx;
  grad_grid[2 * l + 1] = gy;
}

// The same for output pixel l, a linear index over N x Ho x Wo.
template <typename T>
CVG_HD void grid_grad_pixel(const T* grad_out, const T* x, const T* grid, const SampleGeometry& g,
                            int64_t l, T* grad_grid) {
  const int64_t op = g.out_plane(), p = l % op;
  grid_grad_pixel_at(grad_out, x, grid, g, l / op, p / g.wo, p % g.wo, grad_grid);
}

}  // namespace cvg
