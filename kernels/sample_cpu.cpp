// CPU loops of grid_sample's kernels (conventions in kernels/sample.h, math in sample_math.h,
// the code the CUDA kernels run too).
//   sample, grid gradient : parallel over output pixels (n, oy, ox); each computes its taps once
//                           and loops over the channels. One writer per output element.
//   input gradient (the adjoint, a scatter): parallel over (n, c) planes. A chunk walks the
//                           output pixels of its planes in increasing order and adds each one's
//                           contribution, so every input element sums in increasing output order
//                           whatever the split: the result does not depend on the thread count.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/parallel.h"
#include "kernels/sample.h"

namespace cvg {

namespace {

// Output pixels per chunk: each costs C * 4 loads.
int64_t pixel_grain(int64_t channels) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, channels)); }

// fn(n, oy, ox) for the output pixels l in [b, e) (linear indices over N x Ho x Wo), in
// increasing order. The indices are split once per chunk and then stepped: three 64-bit
// divisions per pixel cost more than the sampling itself when C is small.
template <typename Fn>
void for_pixels(const SampleGeometry& g, int64_t b, int64_t e, Fn&& fn) {
  if (b >= e) return;
  const int64_t op = g.out_plane();
  int64_t n = b / op, oy = (b % op) / g.wo, ox = (b % op) % g.wo;
  for (int64_t l = b; l < e; ++l) {
    fn(n, oy, ox);
    if (++ox == g.wo) {
      ox = 0;
      if (++oy == g.ho) { oy = 0; ++n; }
    }
  }
}

// A block of output pixels of one image n, with their taps in flat form: tap k of pixel i reads
// plane[off[k][i]] with weight w[k][i] = wy * wx where ok[k][i], and contributes +0 otherwise
// (then off is 0, a valid address). Splitting the work this way takes the unpredictable
// per-tap branches of tap_sum (out-of-image taps) out of the per-channel loop, which then has
// none: with a random grid those branches, not the loads, dominated the time.
//
// Same results as tap_sum, bit for bit: the terms are added in tap_sum's order, each being
// (wy * wx) * value or, for a tap tap_sum skips, +0; the sum starts at +0 and so is never -0,
// and s + (+0) == s for every other s. The blend keeps a NaN or inf that a skipped tap would read
// from its stand-in address out of the sum.
template <typename T>
struct TapBlock {
  static constexpr int kSize = 64;
  using Bits = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  int64_t n = 0, count = 0;
  int64_t p[kSize];  // position in the output plane
  int64_t off[4][kSize];
  T w[4][kSize];
  Bits ok[4][kSize];  // all ones where the tap is read, else 0

  // Appends output pixel (n, oy, ox) with its first kTaps taps (tap_sum's order: (y0, x0),
  // (y0, x1), (y1, x0), (y1, x1); Nearest reads only the first).
  template <int kTaps>
  void add(const AxisTaps<T>& tx, const AxisTaps<T>& ty, int64_t width, int64_t pos) {
    const int64_t i = count++;
    p[i] = pos;
    for (int j = 0; j < 2; ++j)
      for (int q = 0; q < 2; ++q) {
        const int k = 2 * j + q;
        if (k >= kTaps) continue;
        const bool read = ty.in[j] && tx.in[q];
        off[k][i] = read ? (ty.i0 + j) * width + tx.i0 + q : 0;
        w[k][i] = ty.w[j] * tx.w[q];
        ok[k][i] = read ? Bits(-1) : Bits(0);
      }
  }

  // sum over taps k < kTaps of plane's weighted taps, for pixel i (kTaps = 1 for Nearest, whose
  // second taps are never read).
  template <int kTaps>
  T sum(const T* plane, int64_t i) const {
    T s = T(0);
    for (int k = 0; k < kTaps; ++k) {
      const T t = w[k][i] * plane[off[k][i]];
      s += std::bit_cast<T>(std::bit_cast<Bits>(t) & ok[k][i]);
    }
    return s;
  }
};

// The taps of output pixels [b, e) in blocks of one image each: fn(block) per full block and
// for the rest.
template <typename T, typename Fn>
void for_tap_blocks(const T* pg, const SampleGeometry& g, int order_x, int order_y, int64_t b,
                    int64_t e, Fn&& fn) {
  TapBlock<T> block;
  // The common case takes the branch-free axis_taps_zeros (sample_math.h).
  const bool zeros_order0 = g.padding == GridPadding::Zeros && order_x == 0 && order_y == 0;
  for_pixels(g, b, e, [&](int64_t n, int64_t oy, int64_t ox) {
    if (block.count == TapBlock<T>::kSize || (block.count > 0 && block.n != n)) {
      fn(block);
      block.count = 0;
    }
    block.n = n;
    AxisTaps<T> tx, ty;
    if (zeros_order0) {
      tx = axis_taps_zeros(grid_at(pg, g, n, oy, ox, 0), g.x, g.mode);
      ty = axis_taps_zeros(grid_at(pg, g, n, oy, ox, 1), g.y, g.mode);
    } else {
      pixel_taps(pg, g, n, oy, ox, order_x, order_y, &tx, &ty);
    }
    if (g.mode == GridSampleMode::Nearest)
      block.template add<1>(tx, ty, g.w, oy * g.wo + ox);
    else
      block.template add<4>(tx, ty, g.w, oy * g.wo + ox);
  });
  if (block.count > 0) fn(block);
}

// The sample of a block for every channel (sample_pixel_at over the block).
template <int kTaps, typename T>
void sample_block(const TapBlock<T>& blk, const T* x, const SampleGeometry& g, T* out) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  const T* xn = x + blk.n * g.c * ip;
  T* on = out + blk.n * g.c * op;
  for (int64_t c = 0; c < g.c; ++c) {
    const T* plane = xn + c * ip;
    T* oc = on + c * op;
    for (int64_t i = 0; i < blk.count; ++i) oc[blk.p[i]] = blk.template sum<kTaps>(plane, i);
  }
}

}  // namespace

void sample_cpu(const Tensor& x, const Tensor& grid, const SampleGeometry& g, const Tensor& out) {
  dispatch_floating(x.dtype(), "grid_sample", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pg = grid.data<T>();
    T* po = out.data<T>();
    // Nearest reads one tap per pixel (axis_taps never marks its second taps as read).
    const bool nearest = g.mode == GridSampleMode::Nearest;
    parallel_for(g.n * g.out_plane(), pixel_grain(g.c), [&](int64_t b, int64_t e) {
      for_tap_blocks(pg, g, g.order_x, g.order_y, b, e, [&](const TapBlock<T>& blk) {
        if (nearest)
          sample_block<1>(blk, px, g, po);
        else
          sample_block<4>(blk, px, g, po);
      });
    });
  });
}

void sample_grid_grad_cpu(const Tensor& grad_out, const Tensor& x, const Tensor& grid,
                          const SampleGeometry& g, const Tensor& grad_grid) {
  dispatch_floating(x.dtype(), "grid_sample_backward_grid", [&](auto tag) {
    using T = decltype(tag);
    const T* pgo = grad_out.data<T>();
    const T* px = x.data<T>();
    const T* pg = grid.data<T>();
    T* pgg = grad_grid.data<T>();
    parallel_for(g.n * g.out_plane(), pixel_grain(g.c), [&](int64_t b, int64_t e) {
      for_pixels(g, b, e, [&](int64_t n, int64_t oy, int64_t ox) {
        grid_grad_pixel_at(pgo, px, pg, g, n, oy, ox, pgg);
      });
    });
  });
}

void sample_adjoint_cpu(const Tensor& grad_out, const Tensor& grid, const SampleGeometry& g,
                        const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "grid_sample_backward_input", [&](auto tag) {
    using T = decltype(tag);
    const T* pgo = grad_out.data<T>();
    const T* pg = grid.data<T>();
    T* pgi = grad_in.data<T>();
    const int64_t op = g.out_plane(), ip = g.in_plane();
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, op));
    parallel_for(g.n * g.c, grain, [&](int64_t b, int64_t e) {
      std::memset(pgi + b * ip, 0, sizeof(T) * static_cast<size_t>((e - b) * ip));
      // The planes [b, e) in runs that share a batch index n, so each output pixel's taps are
      // computed once per run rather than once per channel.
      for (int64_t run = b; run < e;) {
        const int64_t n = run / g.c;
        const int64_t run_end = std::min(e, (n + 1) * g.c);
        for_pixels(g, n * op, (n + 1) * op, [&](int64_t, int64_t oy, int64_t ox) {
          AxisTaps<T> tx, ty;
          pixel_taps(pg, g, n, oy, ox, g.order_x, g.order_y, &tx, &ty);
          if (!(tx.in[0] || tx.in[1]) || !(ty.in[0] || ty.in[1])) return;
          const int64_t p = oy * g.wo + ox;
          for (int64_t plane = run; plane < run_end; ++plane)
            tap_scatter(pgi + plane * ip, g.w, tx, ty, pgo[plane * op + p]);
        });
        run = run_end;
      }
    });
  });
}

}  // namespace cvg
