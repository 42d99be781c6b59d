// CPU loops of grid_sample's kernels (conventions in kernels/sample.h, math in sample_math.h,
// the code the CUDA kernels run too).
//   sample, grid gradient : parallel over output pixels (n, oy, ox); each computes its taps once
//                           and loops over the channels. One writer per output element.
//   input gradient (the adjoint, a scatter): parallel over (n, c) planes. A chunk walks the
//                           output pixels of its planes in increasing order and adds each one's
//                           contribution, so every input element sums in increasing output order
//                           whatever the split: the result does not depend on the thread count.
#include <algorithm>
#include <cstring>

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

}  // namespace

void sample_cpu(const Tensor& x, const Tensor& grid, const SampleGeometry& g, const Tensor& out) {
  dispatch_floating(x.dtype(), "grid_sample", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pg = grid.data<T>();
    T* po = out.data<T>();
    parallel_for(g.n * g.out_plane(), pixel_grain(g.c), [&](int64_t b, int64_t e) {
      for_pixels(g, b, e, [&](int64_t n, int64_t oy, int64_t ox) {
        sample_pixel_at(px, pg, g, n, oy, ox, po);
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
