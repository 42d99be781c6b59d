// batch_norm, instance_norm, layer_norm: argument checks, device dispatch, running-stat updates
// and autograd (see kernels/norm.h). The three ops share one fused training-mode op
// (norm_train) over the [A, B, D] view of kernels/norm_math.h; batch_norm in eval mode reuses
// the forward kernel with the running stats as the group statistics.
#include "kernels/norm.h"

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/dispatch.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"

namespace cvg {

namespace {

void check_param(const char* op, const char* arg, const Tensor& p, const Shape& shape,
                 const Tensor& x) {
  if (!p.defined()) return;
  CVG_CHECK(p.shape() == shape, op, ": ", arg, " must have shape ", shape, " to match input of shape ",
            x.shape(), ", got ", p.shape());
  CVG_CHECK(p.dtype() == x.dtype(), op, ": ", arg, " must have the input's dtype ",
            dtype_name(x.dtype()), ", got ", dtype_name(p.dtype()));
}

void check_input(const char* op, const Tensor& x, int64_t min_dim) {
  CVG_CHECK(x.defined(), op, ": undefined input");
  CVG_CHECK(is_floating(x.dtype()), op, ": expected a floating-point input (float32 or float64), got ",
            dtype_name(x.dtype()));
  CVG_CHECK(x.dim() >= min_dim, op, ": input must have at least ", min_dim,
            " dims, got shape ", x.shape());
}

Tensor contiguous_no_grad(const Tensor& t) {
  if (!t.defined()) return t;
  NoGradGuard no_grad;
  return t.contiguous();
}

// The geometry's group-reduction dims and the [A, B, D] shape of a weight broadcast over it.
Dims group_dims(const NormGeom& g) { return g.reduce_outer ? Dims{0, 2} : Dims{2}; }
Dims weight_sum_dims(const NormGeom& g) { return g.weight_on_d ? Dims{0, 1} : Dims{0, 2}; }
Shape weight_view(const NormGeom& g) {
  return g.weight_on_d ? Shape{1, 1, g.D} : Shape{1, g.B, 1};
}

struct TrainForward {
  Tensor y, mean, invstd, var;
};

TrainForward norm_train_forward(const char* name, const Tensor& x, const NormGeom& geom,
                                const Tensor& w, const Tensor& b, double eps, bool want_var) {
  const Tensor xc = contiguous_no_grad(x), wc = contiguous_no_grad(w),
               bc = contiguous_no_grad(b);
  TrainForward f;
  f.y = Tensor::empty(x.shape(), x.options());
  f.mean = Tensor::empty({geom.groups()}, x.options());
  f.invstd = Tensor::empty({geom.groups()}, x.options());
  if (want_var) f.var = Tensor::empty({geom.groups()}, x.options());
  on_device(name, x.device(),
            [&] { norm_forward_cpu(xc, geom, wc, bc, eps, true, f.mean, f.invstd, f.var, f.y); },
            [&] {
#ifdef CVG_WITH_CUDA
              norm_forward_cuda(xc, geom, wc, bc, eps, true, f.mean, f.invstd, f.var, f.y);
#endif
            });
  return f;
}

// The training-mode backward built from differentiable ops (used under create_graph): the
// statistics are recomputed from x so that their dependence on x is part of the graph.
TensorList composite_train_backward(const Tensor& g, const Tensor& x, const Tensor& w,
                                    const Tensor& b, const NormGeom& geom, double eps,
                                    const Node& n) {
  const Shape s3{geom.A, geom.B, geom.D};
  const Tensor x3 = reshape(x, s3), g3 = reshape(g, s3);
  const Dims rd = group_dims(geom);
  const Tensor xcen = x3 - mean(x3, rd, true);
  const Tensor invstd = rsqrt(mean(xcen * xcen, rd, true) + eps);
  const Tensor xhat = xcen * invstd;
  TensorList out(3);
  if (n.needs_grad(0)) {
    const Tensor gy = w.defined() ? g3 * reshape(w, weight_view(geom)) : g3;
    const Tensor dx = invstd * (gy - mean(gy, rd, true) - xhat * mean(gy * xhat, rd, true));
    out[0] = reshape(dx, x.shape());
  }
  if (n.needs_grad(1)) out[1] = reshape(sum(g3 * xhat, weight_sum_dims(geom)), w.shape());
  if (n.needs_grad(2)) out[2] = reshape(sum(g3, weight_sum_dims(geom)), b.shape());
  return out;
}

// The fused training-mode backward (no create_graph): one kernel for dx and the per-group sums.
TensorList fused_train_backward(const char* name, const Tensor& g, const Tensor& x,
                                const Tensor& w, const Tensor& b, const Tensor& mean_g,
                                const Tensor& invstd_g, const NormGeom& geom, const Node& n) {
  const Tensor gc = g.contiguous(), xc = x.contiguous(), wc = contiguous_no_grad(w);
  const bool want_dw = n.needs_grad(1), want_db = n.needs_grad(2);
  const bool group_sums = !geom.weight_on_d && (want_dw || want_db);
  Tensor dx, s_dy, s_dyxhat;
  if (n.needs_grad(0)) dx = Tensor::empty(x.shape(), x.options());
  if (group_sums) {
    s_dy = Tensor::empty({geom.groups()}, x.options());
    s_dyxhat = Tensor::empty({geom.groups()}, x.options());
  }
  if (dx.defined() || group_sums) {
    on_device(name, x.device(),
              [&] { norm_backward_cpu(gc, xc, geom, mean_g, invstd_g, wc, dx, s_dy, s_dyxhat); },
              [&] {
#ifdef CVG_WITH_CUDA
                norm_backward_cuda(gc, xc, geom, mean_g, invstd_g, wc, dx, s_dy, s_dyxhat);
#endif
              });
  }
  TensorList out{dx, Tensor(), Tensor()};
  if (!want_dw && !want_db) return out;
  if (!geom.weight_on_d) {
    // Groups are channels (batch_norm) or (n, c) planes (instance_norm: sum over n).
    auto per_channel = [&](const Tensor& s) {
      return geom.reduce_outer ? s : sum(reshape(s, {geom.A, geom.B}), {0});
    };
    if (want_dw) out[1] = reshape(per_channel(s_dyxhat), w.shape());
    if (want_db) out[2] = reshape(per_channel(s_dy), b.shape());
  } else {
    // layer_norm: the weight runs along d, so its gradients are column sums over the rows.
    Tensor dw = want_dw ? Tensor::empty({geom.D}, x.options()) : Tensor();
    Tensor db = want_db ? Tensor::empty({geom.D}, x.options()) : Tensor();
    on_device(name, x.device(),
              [&] { norm_affine_grad_cpu(gc, xc, geom, mean_g, invstd_g, dw, db); },
              [&] {
#ifdef CVG_WITH_CUDA
                norm_affine_grad_cuda(gc, xc, geom, mean_g, invstd_g, dw, db);
#endif
              });
    if (want_dw) out[1] = reshape(dw, w.shape());
    if (want_db) out[2] = reshape(db, b.shape());
  }
  return out;
}

// Training-mode normalisation of x over the groups of `geom`, recorded for autograd. Returns y
// and, through `stats`, the batch statistics (for the running-stat update).
Tensor norm_train(const char* name, const Tensor& x, const NormGeom& geom, const Tensor& w,
                  const Tensor& b, double eps, TrainForward* stats) {
  TrainForward f = norm_train_forward(name, x, geom, w, b, eps, stats != nullptr);
  if (stats) *stats = f;
  if (!any_requires_grad({x, w, b})) return f.y;
  SavedTensor sx(x), sw(w), sb(b);
  const Tensor mean_g = f.mean, invstd_g = f.invstd;
  return record(name, f.y, {x, w, b},
                [=](const Tensor& g, const Node& n) {
                  const Tensor xs = sx.unpack(n);
                  const Tensor ws = sw.defined() ? sw.unpack(n) : Tensor();
                  const Tensor bs = sb.defined() ? sb.unpack(n) : Tensor();
                  if (GradMode::enabled())
                    return composite_train_backward(g, xs, ws, bs, geom, eps, n);
                  return fused_train_backward(name, g, xs, ws, bs, mean_g, invstd_g, geom, n);
                });
}

NormGeom batch_geom(const Tensor& x) {
  NormGeom g;
  g.A = x.shape()[0];
  g.B = x.shape()[1];
  g.D = 1;
  for (int64_t d = 2; d < x.dim(); ++d) g.D *= x.shape()[d];
  g.reduce_outer = true;
  return g;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum, double eps) {
  const char* name = "batch_norm";
  TraceOp trace(name, {x, weight, bias, running_mean, running_var});
  check_input(name, x, 2);
  common_device(name, {x, weight, bias, running_mean, running_var});
  const int64_t C = x.shape()[1];
  check_param(name, "weight", weight, {C}, x);
  check_param(name, "bias", bias, {C}, x);
  check_param(name, "running_mean", running_mean, {C}, x);
  check_param(name, "running_var", running_var, {C}, x);
  CVG_CHECK(running_mean.defined() == running_var.defined(), name,
            ": running_mean and running_var must both be given or both be undefined");
  CVG_CHECK(eps >= 0, name, ": eps must be >= 0, got ", eps);
  const NormGeom geom = batch_geom(x);

  if (training) {
    CVG_CHECK(geom.count() > 1, name, ": expected more than 1 value per channel when training, got input of shape ",
              x.shape());
    const bool track = running_mean.defined();
    TrainForward stats;
    Tensor y = norm_train(name, x, geom, weight, bias, eps, track ? &stats : nullptr);
    if (track) {
      NoGradGuard no_grad;
      // One fused update (norm_running_update) instead of eight elementwise ops; a
      // non-contiguous buffer is updated through a contiguous copy and written back.
      const Tensor rm = running_mean.contiguous(), rv = running_var.contiguous();
      on_device(
          name, x.device(),
          [&] { norm_running_update_cpu(rm, rv, stats.mean, stats.var, momentum, geom.count()); },
          [&] {
#ifdef CVG_WITH_CUDA
            norm_running_update_cuda(rm, rv, stats.mean, stats.var, momentum, geom.count());
#endif
          });
      for (const auto& [buffer, updated] : {std::pair{running_mean, rm}, {running_var, rv}}) {
        if (updated.impl() == buffer.impl())
          buffer.bump_version();
        else
          Tensor(buffer).copy_(updated);
      }
    }
    return trace.result(y);
  }

  CVG_CHECK(running_mean.defined(), name,
            ": running_mean and running_var must be given in evaluation mode (training=false)");
  Tensor rm, invstd;
  {
    NoGradGuard no_grad;
    rm = running_mean.contiguous();
    invstd = rsqrt(running_var + eps).contiguous();
  }
  const Tensor xc = contiguous_no_grad(x), wc = contiguous_no_grad(weight),
               bc = contiguous_no_grad(bias);
  Tensor y = Tensor::empty(x.shape(), x.options());
  on_device(name, x.device(),
            [&] { norm_forward_cpu(xc, geom, wc, bc, eps, false, rm, invstd, Tensor(), y); },
            [&] {
#ifdef CVG_WITH_CUDA
              norm_forward_cuda(xc, geom, wc, bc, eps, false, rm, invstd, Tensor(), y);
#endif
            });
  if (!any_requires_grad({x, weight, bias})) return trace.result(y);
  // The running stats are constants here: y is affine in x, weight and bias.
  SavedTensor sx(x), sw(weight), srm(running_mean);
  return trace.result(record(
      name, y, {x, weight, bias},
      [sx, sw, srm, invstd, geom, wshape = weight.defined() ? weight.shape() : Shape{},
       bshape = bias.defined() ? bias.shape() : Shape{}](const Tensor& g, const Node& n) {
        const Shape s3{geom.A, geom.B, geom.D}, sc{1, geom.B, 1};
        const Tensor g3 = reshape(g, s3), is3 = reshape(invstd, sc);
        TensorList out(3);
        if (n.needs_grad(0)) {
          const Tensor scale = sw.defined() ? reshape(sw.unpack(n), sc) * is3 : is3;
          out[0] = reshape(g3 * scale, g.shape());
        }
        if (n.needs_grad(1)) {
          const Tensor xhat = (reshape(sx.unpack(n), s3) - reshape(srm.unpack(n), sc)) * is3;
          out[1] = reshape(sum(g3 * xhat, {0, 2}), wshape);
        }
        if (n.needs_grad(2)) out[2] = reshape(sum(g3, {0, 2}), bshape);
        return out;
      }));
}

Tensor instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* name = "instance_norm";
  TraceOp trace(name, {x, weight, bias});
  check_input(name, x, 3);
  common_device(name, {x, weight, bias});
  const int64_t C = x.shape()[1];
  check_param(name, "weight", weight, {C}, x);
  check_param(name, "bias", bias, {C}, x);
  CVG_CHECK(eps >= 0, name, ": eps must be >= 0, got ", eps);
  NormGeom geom = batch_geom(x);
  geom.reduce_outer = false;
  CVG_CHECK(geom.D > 1, name, ": expected more than 1 spatial element per plane, got input of shape ",
            x.shape());
  return trace.result(norm_train(name, x, geom, weight, bias, eps, nullptr));
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const char* name = "layer_norm";
  TraceOp trace(name, {x, weight, bias});
  CVG_CHECK(!normalized_shape.empty(), name, ": normalized_shape must not be empty");
  check_input(name, x, static_cast<int64_t>(normalized_shape.size()));
  common_device(name, {x, weight, bias});
  const int64_t lead = x.dim() - static_cast<int64_t>(normalized_shape.size());
  const Shape trailing(x.shape().begin() + lead, x.shape().end());
  CVG_CHECK(trailing == normalized_shape, name, ": normalized_shape ", normalized_shape,
            " does not match the trailing dims of input of shape ", x.shape());
  check_param(name, "weight", weight, normalized_shape, x);
  check_param(name, "bias", bias, normalized_shape, x);
  CVG_CHECK(eps >= 0, name, ": eps must be >= 0, got ", eps);
  NormGeom geom;
  geom.A = 1;
  for (int64_t d = 0; d < lead; ++d) geom.A *= x.shape()[d];
  geom.B = 1;
  geom.D = numel_of(normalized_shape);
  geom.weight_on_d = true;
  CVG_CHECK(geom.D > 0, name, ": normalized_shape ", normalized_shape, " has no elements");
  return trace.result(norm_train(name, x, geom, weight, bias, eps, nullptr));
}

}  // namespace cvg
