// Unary ops: device dispatch and autograd. Every backward below is written with differentiable
// ops, so create_graph gives second derivatives.
#include "kernels/unary.h"

#include <charconv>
#include <cmath>
#include <string>

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/dispatch.h"

namespace cvg {

namespace {

// A double as the shortest text that reads back to it (0.5, 1e+10, 1.99), for messages.
std::string shortest(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// The rule of unary.h: an integer tensor keeps its dtype through the scalar ops, so a scalar
// the dtype cannot hold exactly would be truncated (int64 * 0.5 gave 0) or overflow the
// conversion to the dtype (undefined behaviour: int32 * 1e10). Refused instead.
void check_int_scalar(const char* op, const char* arg, DType dt, double v) {
  double lo = 0, hi = 0;  // the dtype holds the integers in [lo, hi)
  switch (dt) {
    case DType::int32: lo = -2147483648.0; hi = 2147483648.0; break;
    case DType::int64: lo = -9223372036854775808.0; hi = 9223372036854775808.0; break;
    case DType::uint8: lo = 0; hi = 256; break;
    default: return;  // floating (any double converts) or bool (refused elsewhere)
  }
  CVG_CHECK(std::isfinite(v) && std::trunc(v) == v && v >= lo && v < hi, op, ": the ", arg, " ",
            shortest(v), " is not exactly representable in the ", dtype_name(dt),
            " tensor's dtype (the result keeps the tensor's dtype and would be truncated); "
            "convert the tensor first, e.g. x.to(DType::float32)");
}

}  // namespace

Tensor unary_forward(UnaryOp op, const Tensor& x, const UnaryParams& p, const char* name) {
  CVG_CHECK(x.defined(), name, ": undefined input");
  CVG_CHECK(x.dtype() != DType::bool_, name, ": not defined for bool tensors");
  CVG_CHECK(is_floating(x.dtype()) || unary_int_ok(op), name,
            ": expected a floating-point tensor, got ", dtype_name(x.dtype()));
  if (!is_floating(x.dtype())) {
    if (op == UnaryOp::add_scalar || op == UnaryOp::mul_scalar || op == UnaryOp::rsub_scalar) {
      check_int_scalar(name, "scalar", x.dtype(), p.a);
    } else if (op == UnaryOp::clamp) {
      check_int_scalar(name, "lo", x.dtype(), p.a);
      check_int_scalar(name, "hi", x.dtype(), p.b);
    }
  }
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.options());
  on_device(name, x.device(), [&] { unary_cpu(op, xc, out, p); }, [&] {
#ifdef CVG_WITH_CUDA
    unary_cuda(op, xc, out, p);
#endif
  });
  return out;
}

namespace {

// Runs op forward and records backward(grad, saved x, saved y) -> grad_x.
template <typename Backward>
Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, UnaryParams p, Backward bwd,
                bool save_output = false) {
  TraceOp trace(name, {x});
  Tensor y = unary_forward(op, x, p, name);
  if (!any_requires_grad({x})) return trace.result(y);
  SavedTensor sx(save_output ? Tensor() : x);
  SavedTensor sy(save_output ? y : Tensor(), /*is_output=*/true);
  return trace.result(record(name, y, {x}, [sx, sy, bwd, p](const Tensor& g, const Node& n) {
    return TensorList{bwd(g, sx.unpack(n), sy.unpack(n), p)};
  }));
}

Tensor simple(const char* name, UnaryOp op, const Tensor& x, UnaryParams p = {}) {
  return unary_forward(op, x, p, name);
}

}  // namespace

Tensor neg(const Tensor& x) {
  return unary_op("neg", UnaryOp::neg, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor&, UnaryParams) { return neg(g); });
}
Tensor exp(const Tensor& x) {
  return unary_op("exp", UnaryOp::exp, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor& y, UnaryParams) { return g * y; },
                  true);
}
Tensor log(const Tensor& x) {
  return unary_op("log", UnaryOp::log, x, {},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams) { return g / x; });
}
Tensor sqrt(const Tensor& x) {
  return unary_op("sqrt", UnaryOp::sqrt, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor& y, UnaryParams) {
                    return g / (y * 2.0);
                  },
                  true);
}
Tensor rsqrt(const Tensor& x) {
  // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
  return unary_op("rsqrt", UnaryOp::rsqrt, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor& y, UnaryParams) {
                    return g * (y * y * y) * -0.5;
                  },
                  true);
}
Tensor abs(const Tensor& x) {
  return unary_op("abs", UnaryOp::abs, x, {},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams) {
                    return g * sign(x);
                  });
}
Tensor sign(const Tensor& x) {
  // Piecewise constant: zero gradient, recorded so that graphs stay connected.
  return unary_op("sign", UnaryOp::sign, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor&, UnaryParams) {
                    return zeros_like(g);
                  });
}
Tensor square(const Tensor& x) {
  return unary_op("square", UnaryOp::square, x, {},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams) {
                    return g * x * 2.0;
                  });
}
Tensor reciprocal(const Tensor& x) {
  return unary_op("reciprocal", UnaryOp::reciprocal, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor& y, UnaryParams) {
                    return -(g * y * y);
                  },
                  true);
}
Tensor sin(const Tensor& x) {
  return unary_op("sin", UnaryOp::sin, x, {},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams) {
                    return g * cos(x);
                  });
}
Tensor cos(const Tensor& x) {
  return unary_op("cos", UnaryOp::cos, x, {},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams) {
                    return -(g * sin(x));
                  });
}
Tensor relu(const Tensor& x) {
  // Saves the output, not the input: the next layer usually saves it too (one activation kept
  // instead of two), and y > 0 exactly where x > 0. One fused pass backward (relu_backward).
  return unary_op("relu", UnaryOp::relu, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor& y, UnaryParams) {
                    return relu_backward(g, y);
                  },
                  true);
}
Tensor leaky_relu(const Tensor& x, double slope) {
  return unary_op("leaky_relu", UnaryOp::leaky_relu, x, {slope, 0},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams p) {
                    return g * simple("leaky_relu_mask", UnaryOp::leaky_grad_factor, x, p);
                  });
}
Tensor elu(const Tensor& x, double alpha) {
  // elu'(x) = 1 for x > 0, alpha e^x otherwise; composed from a mask and exp so that it can be
  // differentiated again (the mask is piecewise constant). exp sees 0 where x > 0, so a large
  // positive x (e^x = inf) cannot turn the masked-out term into 0 * inf = NaN.
  return unary_op("elu", UnaryOp::elu, x, {alpha, 0},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams p) {
                    Tensor neg = 1.0 - simple("elu_mask", UnaryOp::positive_mask, x);
                    return g * ((1.0 - neg) + neg * exp(neg * x) * p.a);
                  });
}
Tensor sigmoid(const Tensor& x) {
  return unary_op("sigmoid", UnaryOp::sigmoid, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor& y, UnaryParams) {
                    return g * y * (1.0 - y);
                  },
                  true);
}
Tensor tanh(const Tensor& x) {
  return unary_op("tanh", UnaryOp::tanh, x, {},
                  [](const Tensor& g, const Tensor&, const Tensor& y, UnaryParams) {
                    return g * (1.0 - y * y);
                  },
                  true);
}
Tensor softplus(const Tensor& x) {
  return unary_op("softplus", UnaryOp::softplus, x, {},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams) {
                    return g * sigmoid(x);
                  });
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  CVG_CHECK(lo <= hi, "clamp: lo (", lo, ") must not exceed hi (", hi, ")");
  return unary_op("clamp", UnaryOp::clamp, x, {lo, hi},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams p) {
                    return g * simple("clamp_mask", UnaryOp::clamp_mask, x, p);
                  });
}
Tensor pow(const Tensor& x, double e) {
  return unary_op("pow", UnaryOp::pow_scalar, x, {e, 0},
                  [](const Tensor& g, const Tensor& x, const Tensor&, UnaryParams p) {
                    if (p.a == 0.0) return zeros_like(g);
                    return g * pow(x, p.a - 1.0) * p.a;
                  });
}
Tensor add(const Tensor& x, double s) {
  return unary_op("add_scalar", UnaryOp::add_scalar, x, {s, 0},
                  [](const Tensor& g, const Tensor&, const Tensor&, UnaryParams) { return g; });
}
Tensor sub(const Tensor& x, double s) {
  if (!x.defined() || is_floating(x.dtype())) return add(x, -s);
  // Integer: checked here so that the message names sub and the value the caller passed. -s
  // itself can be outside the dtype (uint8 - 1), so it is negated modulo 2^bits in the dtype:
  // x + (-s mod 2^bits) == x - s with add's wrap-around (uint8: 10 + 255 = 9).
  check_int_scalar("sub", "scalar", x.dtype(), s);
  double neg_s = 0;
  switch (x.dtype()) {
    case DType::int32: neg_s = wrap_neg(static_cast<int32_t>(s)); break;
    case DType::int64: neg_s = static_cast<double>(wrap_neg(static_cast<int64_t>(s))); break;
    case DType::uint8: neg_s = wrap_neg(static_cast<uint8_t>(s)); break;
    default: neg_s = -s; break;  // bool: add refuses it
  }
  return add(x, neg_s);
}
Tensor mul(const Tensor& x, double s) {
  return unary_op("mul_scalar", UnaryOp::mul_scalar, x, {s, 0},
                  [](const Tensor& g, const Tensor&, const Tensor&, UnaryParams p) {
                    return mul(g, p.a);
                  });
}
Tensor div(const Tensor& x, double s) {
  CVG_CHECK(is_floating(x.dtype()), "div: dividing a ", dtype_name(x.dtype()),
            " tensor by a scalar needs a floating tensor");
  return mul(x, 1.0 / s);
}
Tensor rsub(const Tensor& x, double s) {
  return unary_op("rsub_scalar", UnaryOp::rsub_scalar, x, {s, 0},
                  [](const Tensor& g, const Tensor&, const Tensor&, UnaryParams) { return neg(g); });
}

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& x, double s) { return add(x, s); }
Tensor operator+(double s, const Tensor& x) { return add(x, s); }
Tensor operator-(const Tensor& x, double s) { return sub(x, s); }
Tensor operator-(double s, const Tensor& x) { return rsub(x, s); }
Tensor operator*(const Tensor& x, double s) { return mul(x, s); }
Tensor operator*(double s, const Tensor& x) { return mul(x, s); }
Tensor operator/(const Tensor& x, double s) { return div(x, s); }

}  // namespace cvg
