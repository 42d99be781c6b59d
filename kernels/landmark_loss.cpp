// Fused landmark losses: checks, device dispatch and autograd (see kernels/landmark_loss.h).
#include "kernels/landmark_loss.h"

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/dispatch.h"
#include "kernels/view.h"

namespace cvg {

namespace {

void check_logits(const char* op, const char* arg, const Tensor& x) {
  CVG_CHECK(x.defined(), op, ": ", arg, " is undefined");
  CVG_CHECK(is_floating(x.dtype()), op, ": ", arg,
            " must be floating point (float32 or float64), got ", dtype_name(x.dtype()));
  CVG_CHECK(x.dim() == 4, op, ": ", arg, " must be N x K x h x w logits, got shape ", x.shape());
  CVG_CHECK(x.numel() > 0, op, ": ", arg, " must not be empty, got shape ", x.shape());
}

// Checks of the equivariance loss and its backward: logits and logits2 alike, grid N x h x w x 2
// of their dtype, all on one device.
void check_equivariance(const char* op, const Tensor& logits, const Tensor& logits2,
                        const Tensor& grid) {
  check_logits(op, "logits", logits);
  check_logits(op, "logits2", logits2);
  CVG_CHECK(grid.defined(), op, ": grid is undefined");
  CVG_CHECK(logits.shape() == logits2.shape(), op,
            ": logits and logits2 must have the same shape, got ", logits.shape(), " and ",
            logits2.shape());
  const Shape want{logits.size(0), logits.size(2), logits.size(3), 2};
  CVG_CHECK(grid.shape() == want, op, ": grid must be N x h x w x 2 = ", want, " for logits ",
            logits.shape(), ", got ", grid.shape());
  CVG_CHECK(logits2.dtype() == logits.dtype() && grid.dtype() == logits.dtype(), op,
            ": logits, logits2 and grid must have one dtype, got ", dtype_name(logits.dtype()),
            ", ", dtype_name(logits2.dtype()), " and ", dtype_name(grid.dtype()));
  common_device(op, {logits, logits2, grid});
}

void check_diversity(const char* op, const Tensor& logits, int64_t m) {
  check_logits(op, "logits", logits);
  CVG_CHECK(m >= 1 && logits.size(2) % m == 0 && logits.size(3) % m == 0, op,
            ": the maps' h x w = ", logits.size(2), "x", logits.size(3),
            " must be multiples of the cell size m = ", m);
}

void check_grad(const char* op, const Tensor& grad, const Tensor& logits) {
  CVG_CHECK(grad.defined(), op, ": grad is undefined");
  CVG_CHECK(grad.numel() == 1, op, ": grad must hold the one gradient of the scalar loss, got shape ",
            grad.shape());
  CVG_CHECK(grad.dtype() == logits.dtype(), op, ": grad must have the dtype of logits (",
            dtype_name(logits.dtype()), "), got ", dtype_name(grad.dtype()));
  common_device(op, {grad, logits});
}

Tensor contiguous_no_grad(const Tensor& t) {
  NoGradGuard no_grad;
  return t.contiguous();
}

// The node a backward op records under create_graph: its output is a valid gradient, but
// differentiating it again is not implemented, so it says so instead of returning a wrong zero.
Tensor once_differentiable(const char* op, const Tensor& out, const TensorList& inputs) {
  return record(op, out, inputs, [op](const Tensor&, const Node&) -> TensorList {
    fail(op, ": the fused landmark losses are differentiable once (no second derivative); for "
             "higher derivatives use the unfused composition in models/landmarks/losses.h "
             "(equivariance_loss / diversity_loss of spatial_softmax(logits))");
  });
}

}  // namespace

Tensor landmark_equivariance_loss(const Tensor& logits, const Tensor& logits2, const Tensor& grid) {
  const char* name = "landmark_equivariance_loss";
  TraceOp trace(name, {logits, logits2, grid});
  check_equivariance(name, logits, logits2, grid);
  CVG_CHECK(!any_requires_grad({grid}), name,
            ": grid requires grad, but the fused loss has no gradient w.r.t. the grid (it is "
            "data: detach it, or use the unfused equivariance_loss of models/landmarks/losses.h)");
  const Tensor x = contiguous_no_grad(logits), x2 = contiguous_no_grad(logits2),
               gr = contiguous_no_grad(grid);
  Tensor out = Tensor::empty({}, logits.options());
  on_device(name, logits.device(), [&] { landmark_equivariance_loss_cpu(x, x2, gr, out); },
            [&] {
#ifdef CVG_WITH_CUDA
              landmark_equivariance_loss_cuda(x, x2, gr, out);
#endif
            });
  if (!any_requires_grad({logits, logits2})) return trace.result(out);
  // Only the inputs are saved; the backward recomputes the softmax statistics from them.
  SavedTensor s1(logits), s2(logits2), sg(grid);
  return trace.result(record(name, out, {logits, logits2}, [s1, s2, sg](const Tensor& g, const Node& n) {
    const Tensor d = landmark_equivariance_loss_backward(g, s1.unpack(n), s2.unpack(n), sg.unpack(n));
    return TensorList{n.needs_grad(0) ? select(d, 0, 0) : Tensor(),
                      n.needs_grad(1) ? select(d, 0, 1) : Tensor()};
  }));
}

Tensor landmark_equivariance_loss_backward(const Tensor& grad, const Tensor& logits,
                                           const Tensor& logits2, const Tensor& grid) {
  const char* name = "landmark_equivariance_loss_backward";
  TraceOp trace(name, {grad, logits, logits2, grid});
  check_equivariance(name, logits, logits2, grid);
  check_grad(name, grad, logits);
  const Tensor g = contiguous_no_grad(grad), x = contiguous_no_grad(logits),
               x2 = contiguous_no_grad(logits2), gr = contiguous_no_grad(grid);
  Shape shape{2};
  for (int64_t s : logits.shape()) shape.push_back(s);
  Tensor dx = Tensor::empty(shape, logits.options());
  on_device(name, logits.device(),
            [&] { landmark_equivariance_loss_backward_cpu(g, x, x2, gr, dx); },
            [&] {
#ifdef CVG_WITH_CUDA
              landmark_equivariance_loss_backward_cuda(g, x, x2, gr, dx);
#endif
            });
  if (!any_requires_grad({grad, logits, logits2, grid})) return trace.result(dx);
  return trace.result(once_differentiable(name, dx, {grad, logits, logits2, grid}));
}

Tensor landmark_diversity_loss(const Tensor& logits, int64_t m) {
  const char* name = "landmark_diversity_loss";
  TraceOp trace(name, {logits});
  check_diversity(name, logits, m);
  const Tensor x = contiguous_no_grad(logits);
  Tensor out = Tensor::empty({}, logits.options());
  on_device(name, logits.device(), [&] { landmark_diversity_loss_cpu(x, m, out); },
            [&] {
#ifdef CVG_WITH_CUDA
              landmark_diversity_loss_cuda(x, m, out);
#endif
            });
  if (!any_requires_grad({logits})) return trace.result(out);
  SavedTensor s(logits);
  return trace.result(record(name, out, {logits}, [s, m](const Tensor& g, const Node& n) {
    return TensorList{landmark_diversity_loss_backward(g, s.unpack(n), m)};
  }));
}

Tensor landmark_diversity_loss_backward(const Tensor& grad, const Tensor& logits, int64_t m) {
  const char* name = "landmark_diversity_loss_backward";
  TraceOp trace(name, {grad, logits});
  check_diversity(name, logits, m);
  check_grad(name, grad, logits);
  const Tensor g = contiguous_no_grad(grad), x = contiguous_no_grad(logits);
  Tensor dx = Tensor::empty(logits.shape(), logits.options());
  on_device(name, logits.device(), [&] { landmark_diversity_loss_backward_cpu(g, x, m, dx); },
            [&] {
#ifdef CVG_WITH_CUDA
              landmark_diversity_loss_backward_cuda(g, x, m, dx);
#endif
            });
  if (!any_requires_grad({grad, logits})) return trace.result(dx);
  return trace.result(once_differentiable(name, dx, {grad, logits}));
}

}  // namespace cvg
