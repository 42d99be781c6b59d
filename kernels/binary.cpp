// Binary ops: dtype promotion, device dispatch and autograd. Gradients of broadcast inputs are
// reduced back to the input's shape with sum_to; every backward uses differentiable ops.
#include "kernels/binary.h"

#include "core/autograd.h"
#include "kernels/dispatch.h"
#include "core/trace.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"

namespace cvg {

namespace {
const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                "relu_backward", "eq", "ne", "lt", "le", "gt", "ge"};
  return names[static_cast<int>(op)];
}
}  // namespace

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  CVG_CHECK(a.defined() && b.defined(), name, ": undefined input");
  const Device dev = common_device(name, {a, b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  check_shape(shape, name);
  const DType dt = promote_types(a.dtype(), b.dtype());
  CVG_CHECK(op != BinaryOp::div || is_floating(dt), name, ": integer division is not supported (",
            dtype_name(a.dtype()), " / ", dtype_name(b.dtype()), "); convert to a float dtype");
  Tensor ca, cb;
  {
    NoGradGuard no_grad;
    ca = a.to(dt);
    cb = b.to(dt);
  }
  Tensor out = Tensor::empty(shape, TensorOptions{}.with_device(dev).with_dtype(
                                        is_comparison(op) ? DType::bool_ : dt));
  on_device(name, out.device(), [&] { binary_cpu(op, ca, cb, out); },
                [&] {
#ifdef CVG_WITH_CUDA
                  binary_cuda(op, ca, cb, out);
#endif
                });
  return out;
}

Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b) {
  CVG_CHECK(cond.defined() && a.defined() && b.defined(), "where: undefined input");
  const Device dev = common_device("where", {cond, a, b});
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const DType dt = promote_types(a.dtype(), b.dtype());
  Tensor cc, ca, cb;
  {
    NoGradGuard no_grad;
    cc = cond.to(DType::bool_);
    ca = a.to(dt);
    cb = b.to(dt);
  }
  Tensor out = Tensor::empty(shape, TensorOptions{}.with_device(dev).with_dtype(dt));
  on_device("where", out.device(), [&] { where_cpu(cc, ca, cb, out); },
                [&] {
#ifdef CVG_WITH_CUDA
                  where_cuda(cc, ca, cb, out);
#endif
                });
  return out;
}

namespace {

// Records a binary op whose backward is bwd(g, a, b) -> {ga, gb} at the broadcast shape; the
// engine receives them reduced to each input's shape.
template <typename Backward>
Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b, Backward bwd,
                 bool save_inputs = true) {
  const char* name = binary_name(op);
  TraceOp trace(name, {a, b});
  Tensor out = binary_forward(op, a, b, name);
  if (!any_requires_grad({a, b})) return trace.result(out);
  SavedTensor sa(save_inputs ? a : Tensor()), sb(save_inputs ? b : Tensor());
  const Shape shape_a = a.shape(), shape_b = b.shape();
  return trace.result(record(name, out, {a, b},
      [sa, sb, bwd, shape_a, shape_b](const Tensor& g, const Node& n) {
        const Tensor ua = sa.unpack(n), ub = sb.unpack(n);
        auto [ga, gb] = bwd(g, ua, ub, n.needs_grad(0), n.needs_grad(1));
        return TensorList{ga.defined() ? sum_to(ga, shape_a) : ga,
                          gb.defined() ? sum_to(gb, shape_b) : gb};
      }));
}

using Grads = std::pair<Tensor, Tensor>;

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::add, a, b, [](const Tensor& g, const Tensor&, const Tensor&, bool, bool) {
    return Grads{g, g};
  }, /*save_inputs=*/false);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::sub, a, b, [](const Tensor& g, const Tensor&, const Tensor&, bool, bool nb) {
    return Grads{g, nb ? neg(g) : Tensor()};
  }, /*save_inputs=*/false);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::mul, a, b,
                   [](const Tensor& g, const Tensor& a, const Tensor& b, bool na, bool nb) {
                     return Grads{na ? g * b : Tensor(), nb ? g * a : Tensor()};
                   });
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::div, a, b,
                   [](const Tensor& g, const Tensor& a, const Tensor& b, bool na, bool nb) {
                     return Grads{na ? g / b : Tensor(), nb ? -(g * a / (b * b)) : Tensor()};
                   });
}
Tensor pow(const Tensor& a, const Tensor& b) {
  // d/da a^b = b a^(b-1), which is 0 wherever b = 0 (a^0 is constant; at a = 0 the formula
  // would give 0 * inf); d/db a^b = a^b ln a, which at a = 0 and b >= 0 is its limit as
  // a -> 0+, 0. Both are PyTorch's values. They come from substituted operands (the power taken
  // at b - 1 = 0 where b = 0, ln taken of 1 where a = 0 <= b), not by masking a NaN away, so the
  // derivatives of these gradients (create_graph) stay finite there too. Elsewhere the formulas
  // stand: a < 0 gives NaN in d/db, a = 0 with b < 0 gives -inf.
  return binary_op(BinaryOp::pow, a, b,
                   [](const Tensor& g, const Tensor& a, const Tensor& b, bool na, bool nb) {
                     const Tensor zero = scalar_tensor(0.0, a.options());
                     const Tensor one = scalar_tensor(1.0, a.options());
                     Grads grads;
                     if (na) grads.first = g * b * pow(a, where(eq(b, zero), one, b) - 1.0);
                     if (nb) {
                       const Tensor base = where(eq(a, zero), where(ge(b, zero), one, a), a);
                       grads.second = g * pow(a, b) * log(base);
                     }
                     return grads;
                   });
}

namespace {
// Gradient mask of maximum/minimum: 1 where a wins, 0 where b wins, 1/2 on ties (the
// subgradient that treats both inputs symmetrically, as torch.maximum does).
Grads extremum_grads(const Tensor& g, const Tensor& a, const Tensor& b, bool is_max) {
  const Tensor wins = (is_max ? gt(a, b) : lt(a, b)).to(g.dtype());
  const Tensor ties = eq(a, b).to(g.dtype());
  const Tensor mask_a = wins + ties * 0.5;
  return Grads{g * mask_a, g * (1.0 - mask_a)};
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::maximum, a, b,
                   [](const Tensor& g, const Tensor& a, const Tensor& b, bool, bool) {
                     return extremum_grads(g, a, b, true);
                   });
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::minimum, a, b,
                   [](const Tensor& g, const Tensor& a, const Tensor& b, bool, bool) {
                     return extremum_grads(g, a, b, false);
                   });
}

Tensor relu_backward(const Tensor& grad, const Tensor& y) {
  // d/dgrad is the same mask, applied to the incoming gradient; y only selects (piecewise
  // constant), so it gets no gradient, as relu's mask did.
  return binary_op(BinaryOp::relu_backward, grad, y,
                   [](const Tensor& gg, const Tensor&, const Tensor& y, bool ng, bool) {
                     return Grads{ng ? relu_backward(gg, y) : Tensor(), Tensor()};
                   });
}

#define CVG_COMPARISON(fn)                                                      \
  Tensor fn(const Tensor& a, const Tensor& b) {                                 \
    TraceOp trace(#fn, {a, b});                                                 \
    return trace.result(binary_forward(BinaryOp::fn, a, b, #fn));               \
  }
CVG_COMPARISON(eq)
CVG_COMPARISON(ne)
CVG_COMPARISON(lt)
CVG_COMPARISON(le)
CVG_COMPARISON(gt)
CVG_COMPARISON(ge)
#undef CVG_COMPARISON

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  TraceOp trace("where", {cond, a, b});
  Tensor out = where_forward(cond, a, b);
  if (!any_requires_grad({a, b})) return trace.result(out);
  SavedTensor sc(cond);
  const Shape shape_a = a.shape(), shape_b = b.shape();
  return trace.result(record("where", out, {Tensor(), a, b},
      [sc, shape_a, shape_b](const Tensor& g, const Node& n) {
        const Tensor c = sc.unpack(n);
        const Tensor zero = zeros({}, g.options());
        Tensor ga = n.needs_grad(1) ? sum_to(where(c, g, zero), shape_a) : Tensor();
        Tensor gb = n.needs_grad(2) ? sum_to(where(c, zero, g), shape_b) : Tensor();
        return TensorList{Tensor(), ga, gb};
      }));
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }

}  // namespace cvg
