// spatial_softmax and soft_argmax: checks, device dispatch and autograd (see kernels/spatial.h).
#include "kernels/spatial.h"

#include <cmath>

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/dispatch.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"

namespace cvg {

namespace {

void check_spatial(const char* op, const Tensor& x, double temperature) {
  CVG_CHECK(x.defined(), op, ": undefined input");
  CVG_CHECK(is_floating(x.dtype()), op, ": expected a floating-point input (float32 or float64), got ",
            dtype_name(x.dtype()));
  CVG_CHECK(x.dim() == 4, op, ": input must be N x K x H x W, got shape ", x.shape());
  CVG_CHECK(temperature > 0.0 && std::isfinite(temperature), op,
            ": temperature must be positive and finite, got ", temperature);
}

Tensor contiguous_no_grad(const Tensor& t) {
  NoGradGuard no_grad;
  return t.contiguous();
}

// The coordinate grids as [1, 1, H, 1] (u_y) and [1, 1, 1, W] (u_x) constants.
Tensor coord_grid(int64_t size, bool normalized, const Tensor& like, bool rows) {
  std::vector<double> v(size);
  for (int64_t i = 0; i < size; ++i) v[i] = spatial_coord<double>(i, size, normalized);
  const Shape shape = rows ? Shape{1, 1, size, 1} : Shape{1, 1, 1, size};
  return from_vector(v, shape, like.options());
}

}  // namespace

Tensor spatial_softmax(const Tensor& x, double temperature) {
  const char* name = "spatial_softmax";
  TraceOp trace(name, {x});
  check_spatial(name, x, temperature);
  const int64_t planes = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const Tensor xc = contiguous_no_grad(x);
  Tensor y = Tensor::empty(x.shape(), x.options());
  if (y.numel() > 0) {
    on_device(name, x.device(),
              [&] { spatial_softmax_cpu(xc, y, planes, H, W, temperature); },
              [&] {
#ifdef CVG_WITH_CUDA
                spatial_softmax_cuda(xc, y, planes, H, W, temperature);
#endif
              });
  }
  if (!any_requires_grad({x})) return trace.result(y);
  SavedTensor sy(y, /*is_output=*/true);
  return trace.result(record(name, y, {x}, [sy, temperature](const Tensor& g, const Node& n) {
    const Tensor p = sy.unpack(n);
    return TensorList{p * (g - sum(g * p, {2, 3}, /*keepdim=*/true)) * (1.0 / temperature)};
  }));
}

Tensor soft_argmax(const Tensor& x, CoordUnits units, double temperature) {
  const char* name = "soft_argmax";
  TraceOp trace(name, {x});
  check_spatial(name, x, temperature);
  CVG_CHECK(x.shape()[2] > 0 && x.shape()[3] > 0, name, ": the planes must not be empty, got shape ",
            x.shape());
  const bool normalized = units == CoordUnits::Normalized;
  const int64_t N = x.shape()[0], K = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const Tensor xc = contiguous_no_grad(x);
  Tensor out = Tensor::empty({N, K, 2}, x.options());
  if (out.numel() > 0) {
    on_device(name, x.device(),
              [&] { soft_argmax_cpu(xc, out, N * K, H, W, normalized, temperature); },
              [&] {
#ifdef CVG_WITH_CUDA
                soft_argmax_cuda(xc, out, N * K, H, W, normalized, temperature);
#endif
              });
  }
  if (!any_requires_grad({x})) return trace.result(out);
  SavedTensor sx(x), sout(out, /*is_output=*/true);
  return trace.result(record(
      name, out, {x}, [sx, sout, normalized, temperature](const Tensor& g, const Node& n) {
        const Tensor xs = sx.unpack(n), o = sout.unpack(n);
        const int64_t N = xs.shape()[0], K = xs.shape()[1], H = xs.shape()[2], W = xs.shape()[3];
        if (GradMode::enabled()) {
          // create_graph: the same formula in differentiable ops (p depends on x, o on x).
          const Tensor p = spatial_softmax(xs, temperature);
          const Tensor ux = coord_grid(W, normalized, xs, false), uy = coord_grid(H, normalized, xs, true);
          const Tensor ox = reshape(select(o, 2, 0), {N, K, 1, 1}), oy = reshape(select(o, 2, 1), {N, K, 1, 1});
          const Tensor gx = reshape(select(g, 2, 0), {N, K, 1, 1}), gy = reshape(select(g, 2, 1), {N, K, 1, 1});
          return TensorList{p * ((ux - ox) * gx + (uy - oy) * gy) * (1.0 / temperature)};
        }
        const Tensor xc = xs.contiguous(), oc = o.contiguous(), gc = g.contiguous();
        Tensor dx = Tensor::empty(xs.shape(), xs.options());
        if (dx.numel() > 0) {
          on_device("soft_argmax backward", xs.device(),
                    [&] {
                      soft_argmax_backward_cpu(xc, oc, gc, dx, N * K, H, W, normalized,
                                               temperature);
                    },
                    [&] {
#ifdef CVG_WITH_CUDA
                      soft_argmax_backward_cuda(xc, oc, gc, dx, N * K, H, W, normalized,
                                                temperature);
#endif
                    });
        }
        return TensorList{dx};
      }));
}

}  // namespace cvg
