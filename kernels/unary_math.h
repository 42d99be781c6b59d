#pragma once
// Per-element math of the unary ops, shared by kernels/unary_cpu.cpp and kernels/unary_cuda.cu.
// unary_eval<OP>(x, p) computes one output element; p carries the op's scalar parameters
// (slope of leaky_relu, alpha of elu, bounds of clamp, exponent of pow, the scalar of the
// *_scalar ops). Conventions at kinks (used by the backward formulas in kernels/unary.cpp):
//   relu'(0) = 0, abs'(0) = 0 (sign(0) = 0), clamp passes the gradient on lo <= x <= hi,
//   leaky_relu'(0) = slope, elu'(0) = 1 (x > 0 branch is strict).
// relu(NaN) = NaN, and relu'(NaN) = 0 (relu_backward passes g only where y > 0). PyTorch 1.13
// passes the gradient at NaN (its threshold_backward zeroes where y <= 0); either way the loss
// is NaN already.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/hd.h"

namespace cvg {

enum class UnaryOp : uint8_t {
  neg, exp, log, sqrt, rsqrt, abs, sign, relu, sigmoid, tanh, softplus, leaky_relu, elu,
  clamp, pow_scalar, add_scalar, mul_scalar, rsub_scalar, square, reciprocal, sin, cos,
  positive_mask,  // 1 where x > 0 else 0 (elu's branch mask)
  elu_grad_factor,  // elu'(x): 1 for x > 0, alpha * exp(x) otherwise
  leaky_grad_factor,  // leaky_relu'(x): 1 for x > 0, slope otherwise
  clamp_mask,  // 1 where lo <= x <= hi else 0 (clamp's derivative)
};

struct UnaryParams {
  double a = 0;  // slope, alpha, lo, exponent or scalar
  double b = 0;  // hi
};

// Integer +, - and * wrap around modulo 2^bits (two's complement), as in PyTorch. Signed
// overflow is undefined behaviour in C++, so integer types compute in an unsigned type (at least
// unsigned int's width: narrower types would promote to signed int, where uint16-sized products
// can overflow) and convert back, which C++20 defines as modular. Floating types: plain ops.
template <typename T>
using WrapUnsigned = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned,
                                        std::make_unsigned_t<T>>;
template <typename T>
CVG_HD T wrap_add(T x, T y) {
  if constexpr (std::is_integral_v<T>) {
    using U = WrapUnsigned<T>;
    return static_cast<T>(static_cast<U>(x) + static_cast<U>(y));
  } else {
    return x + y;
  }
}
template <typename T>
CVG_HD T wrap_sub(T x, T y) {
  if constexpr (std::is_integral_v<T>) {
    using U = WrapUnsigned<T>;
    return static_cast<T>(static_cast<U>(x) - static_cast<U>(y));
  } else {
    return x - y;
  }
}
template <typename T>
CVG_HD T wrap_mul(T x, T y) {
  if constexpr (std::is_integral_v<T>) {
    using U = WrapUnsigned<T>;
    return static_cast<T>(static_cast<U>(x) * static_cast<U>(y));
  } else {
    return x * y;
  }
}
// -x; for floats not 0 - x, which would turn -0.0 into +0.0.
template <typename T>
CVG_HD T wrap_neg(T x) {
  if constexpr (std::is_integral_v<T>) return wrap_sub(T(0), x);
  else return -x;
}

// For integer T, p.a and p.b must be exactly representable in T (unary_forward checks this
// before any kernel runs, see unary.h), so the casts below are exact and never undefined.
template <UnaryOp OP, typename T>
CVG_HD T unary_eval(T x, const UnaryParams& p) {
  using std::exp; using std::log; using std::sqrt; using std::tanh; using std::fabs;
  using std::pow; using std::sin; using std::cos; using std::log1p;
  const T a = static_cast<T>(p.a), b = static_cast<T>(p.b);
  if constexpr (OP == UnaryOp::neg) return wrap_neg(x);
  else if constexpr (OP == UnaryOp::exp) return exp(x);
  else if constexpr (OP == UnaryOp::log) return log(x);
  else if constexpr (OP == UnaryOp::sqrt) return sqrt(x);
  else if constexpr (OP == UnaryOp::rsqrt) return T(1) / sqrt(x);
  // Unsigned types (uint8) are never negative: no comparison with 0 (nvcc warns on it).
  else if constexpr (OP == UnaryOp::abs && std::is_unsigned_v<T>) return x;
  else if constexpr (OP == UnaryOp::abs) return x < T(0) ? wrap_neg(x) : x;
  else if constexpr (OP == UnaryOp::sign && std::is_unsigned_v<T>) return x > T(0) ? T(1) : T(0);
  else if constexpr (OP == UnaryOp::sign) return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
  // Written as x <= 0 ? 0 : x, not x > 0 ? x : 0, so that NaN propagates (the comparison is
  // false for NaN), as in PyTorch and as leaky_relu, elu and clamp do; relu(-0.0) stays +0.
  else if constexpr (OP == UnaryOp::relu) return x <= T(0) ? T(0) : x;
  // Written so that neither branch overflows: exp of a non-positive number only.
  else if constexpr (OP == UnaryOp::sigmoid)
    return x >= T(0) ? T(1) / (T(1) + exp(-x)) : exp(x) / (T(1) + exp(x));
  else if constexpr (OP == UnaryOp::tanh) return tanh(x);
  // softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|), stable for large |x|.
  else if constexpr (OP == UnaryOp::softplus)
    return (x > T(0) ? x : T(0)) + log1p(exp(x > T(0) ? -x : x));
  else if constexpr (OP == UnaryOp::leaky_relu) return x > T(0) ? x : a * x;
  else if constexpr (OP == UnaryOp::elu) return x > T(0) ? x : a * (exp(x) - T(1));
  // NaN passes through clamp (comparisons with NaN are false).
  else if constexpr (OP == UnaryOp::clamp) return x < a ? a : (x > b ? b : x);
  else if constexpr (OP == UnaryOp::pow_scalar) return pow(x, a);
  else if constexpr (OP == UnaryOp::add_scalar) return wrap_add(x, a);
  else if constexpr (OP == UnaryOp::mul_scalar) return wrap_mul(x, a);
  else if constexpr (OP == UnaryOp::rsub_scalar) return wrap_sub(a, x);
  else if constexpr (OP == UnaryOp::square) return wrap_mul(x, x);
  else if constexpr (OP == UnaryOp::reciprocal) return T(1) / x;
  else if constexpr (OP == UnaryOp::sin) return sin(x);
  else if constexpr (OP == UnaryOp::cos) return cos(x);
  else if constexpr (OP == UnaryOp::positive_mask) return x > T(0) ? T(1) : T(0);
  else if constexpr (OP == UnaryOp::elu_grad_factor) return x > T(0) ? T(1) : a * exp(x);
  else if constexpr (OP == UnaryOp::leaky_grad_factor) return x > T(0) ? T(1) : a;
  else if constexpr (OP == UnaryOp::clamp_mask) return (x >= a && x <= b) ? T(1) : T(0);
  else static_assert(OP != OP, "unhandled UnaryOp");
}

// Ops that are also defined on integer tensors (the rest need float32/float64).
constexpr bool unary_int_ok(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::sign || op == UnaryOp::relu ||
         op == UnaryOp::clamp || op == UnaryOp::add_scalar || op == UnaryOp::mul_scalar ||
         op == UnaryOp::rsub_scalar || op == UnaryOp::square;
}

// Calls fn(std::integral_constant<UnaryOp, op>{}) so that kernels are instantiated per op.
template <typename Fn>
decltype(auto) dispatch_unary(UnaryOp op, Fn&& fn) {
#define CVG_UNARY_CASE(name) \
  case UnaryOp::name: return fn(std::integral_constant<UnaryOp, UnaryOp::name>{});
  switch (op) {
    CVG_UNARY_CASE(neg) CVG_UNARY_CASE(exp) CVG_UNARY_CASE(log) CVG_UNARY_CASE(sqrt)
    CVG_UNARY_CASE(rsqrt) CVG_UNARY_CASE(abs) CVG_UNARY_CASE(sign) CVG_UNARY_CASE(relu)
    CVG_UNARY_CASE(sigmoid) CVG_UNARY_CASE(tanh) CVG_UNARY_CASE(softplus)
    CVG_UNARY_CASE(leaky_relu) CVG_UNARY_CASE(elu) CVG_UNARY_CASE(clamp)
    CVG_UNARY_CASE(pow_scalar) CVG_UNARY_CASE(add_scalar) CVG_UNARY_CASE(mul_scalar)
    CVG_UNARY_CASE(rsub_scalar) CVG_UNARY_CASE(square) CVG_UNARY_CASE(reciprocal)
    CVG_UNARY_CASE(sin) CVG_UNARY_CASE(cos) CVG_UNARY_CASE(positive_mask)
    CVG_UNARY_CASE(elu_grad_factor) CVG_UNARY_CASE(leaky_grad_factor) CVG_UNARY_CASE(clamp_mask)
  }
#undef CVG_UNARY_CASE
  return fn(std::integral_constant<UnaryOp, UnaryOp::neg>{});
}

}  // namespace cvg
