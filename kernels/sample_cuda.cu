// CUDA kernels of grid_sample (conventions in kernels/sample.h). Contiguous NCHW data, a grid of
// any strides; grid-stride loops; the per-element math is kernels/sample_math.h, the code of the
// CPU loops in sample_cpu.cpp.
//   sample        : one thread per output pixel (n, oy, ox): computes the taps once and loops
//                   over the channels (coalesced: neighbouring threads, neighbouring pixels).
//   grid gradient : one thread per output pixel, sums over the channels itself; no atomics.
//   input gradient, default: one thread per output pixel scatters into the (zeroed) gradient
//                   with atomicAdd, 4 taps per channel. The rounding of the sums depends on the
//                   order the atomics land in.
//   input gradient, deterministic_algorithms(): one thread per (n, c) plane walks the output
//                   pixels in increasing order and adds their contributions, the CPU's order
//                   (no atomics, bitwise reproducible; parallel over N * C planes only).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_check.h"
#include "core/cuda_launch.cuh"
#include "kernels/sample.h"

namespace cvg {

namespace {

template <typename T>
__global__ void sample_kernel(const T* x, const T* grid, SampleGeometry g, T* out) {
  CVG_GRID_STRIDE(l, g.n * g.out_plane()) sample_pixel(x, grid, g, l, out);
}

template <typename T>
__global__ void grid_grad_kernel(const T* grad_out, const T* x, const T* grid, SampleGeometry g,
                                 T* grad_grid) {
  CVG_GRID_STRIDE(l, g.n * g.out_plane()) grid_grad_pixel(grad_out, x, grid, g, l, grad_grid);
}

template <typename T>
__global__ void adjoint_atomic_kernel(const T* grad_out, const T* grid, SampleGeometry g,
                                      T* grad_in) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  CVG_GRID_STRIDE(l, g.n * op) {
    const int64_t n = l / op, p = l % op;
    AxisTaps<T> tx, ty;
    pixel_taps(grid, g, n, p / g.wo, p % g.wo, g.order_x, g.order_y, &tx, &ty);
    if (!(tx.in[0] || tx.in[1]) || !(ty.in[0] || ty.in[1])) continue;
    const T* go = grad_out + n * g.c * op + p;
    T* gi = grad_in + n * g.c * ip;
    for (int64_t c = 0; c < g.c; ++c) {
      const T v = go[c * op];
      T* plane = gi + c * ip;
      for (int j = 0; j < 2; ++j) {
        if (!ty.in[j]) continue;
        for (int i = 0; i < 2; ++i)
          if (tx.in[i]) atomicAdd(plane + (ty.i0 + j) * g.w + tx.i0 + i, ty.w[j] * tx.w[i] * v);
      }
    }
  }
}

template <typename T>
__global__ void adjoint_plane_kernel(const T* grad_out, const T* grid, SampleGeometry g,
                                     T* grad_in) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  CVG_GRID_STRIDE(plane, g.n * g.c) {
    const int64_t n = plane / g.c;
    const T* go = grad_out + plane * op;
    T* gi = grad_in + plane * ip;
    for (int64_t p = 0; p < op; ++p) {
      AxisTaps<T> tx, ty;
      pixel_taps(grid, g, n, p / g.wo, p % g.wo, g.order_x, g.order_y, &tx, &ty);
      tap_scatter(gi, g.w, tx, ty, go[p]);
    }
  }
}

}  // namespace

void sample_cuda(const Tensor& x, const Tensor& grid, const SampleGeometry& g, const Tensor& out) {
  dispatch_floating(x.dtype(), "grid_sample", [&](auto tag) {
    using T = decltype(tag);
    sample_kernel<T><<<grid_blocks(g.n * g.out_plane()), kBlockThreads>>>(
        x.data<T>(), grid.data<T>(), g, out.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("grid_sample");
}

void sample_grid_grad_cuda(const Tensor& grad_out, const Tensor& x, const Tensor& grid,
                           const SampleGeometry& g, const Tensor& grad_grid) {
  dispatch_floating(x.dtype(), "grid_sample_backward_grid", [&](auto tag) {
    using T = decltype(tag);
    grid_grad_kernel<T><<<grid_blocks(g.n * g.out_plane()), kBlockThreads>>>(
        grad_out.data<T>(), x.data<T>(), grid.data<T>(), g, grad_grid.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("grid_sample_backward_grid");
}

void sample_adjoint_cuda(const Tensor& grad_out, const Tensor& grid, const SampleGeometry& g,
                         const Tensor& grad_in, bool deterministic) {
  const char* op = "grid_sample_backward_input";
  CVG_CUDA_CHECK(cudaMemsetAsync(grad_in.raw_data(), 0, grad_in.numel() * dtype_size(grad_in.dtype())),
                 op);
  // An empty output grid (Ho or Wo = 0) leaves the zeros; a launch of 0 blocks is an error.
  if (g.n * g.c * g.out_plane() == 0) return;
  dispatch_floating(grad_out.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if (deterministic)
      adjoint_plane_kernel<T><<<grid_blocks(g.n * g.c), kBlockThreads>>>(
          grad_out.data<T>(), grid.data<T>(), g, grad_in.data<T>());
    else
      adjoint_atomic_kernel<T><<<grid_blocks(g.n * g.out_plane()), kBlockThreads>>>(
          grad_out.data<T>(), grid.data<T>(), g, grad_in.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH(op);
}

}  // namespace cvg
