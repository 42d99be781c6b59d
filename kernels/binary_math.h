#pragma once
// Per-element math of the binary ops, shared by kernels/binary_cpu.cpp and
// kernels/binary_cuda.cu. Arithmetic ops compute in the promoted dtype of their inputs;
// comparisons produce bool. maximum/minimum propagate NaN (as torch.maximum does); on ties the
// gradient goes to both inputs in halves (see kernels/binary.cpp). relu_backward(g, y) is
// relu's gradient in one pass: g where y > 0, else 0 (a select, not g * mask: an inf or NaN
// gradient where the unit is off gives 0, as PyTorch's threshold_backward does).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/hd.h"

namespace cvg {

// Comparisons last (is_comparison).
enum class BinaryOp : uint8_t {
  add, sub, mul, div, pow, maximum, minimum, relu_backward, eq, ne, lt, le, gt, ge
};

constexpr bool is_comparison(BinaryOp op) { return op >= BinaryOp::eq; }

template <BinaryOp OP, typename T>
CVG_HD auto binary_eval(T x, T y) {
  if constexpr (OP == BinaryOp::add) return static_cast<T>(x + y);
  else if constexpr (OP == BinaryOp::sub) return static_cast<T>(x - y);
  else if constexpr (OP == BinaryOp::mul) return static_cast<T>(x * y);
  else if constexpr (OP == BinaryOp::div) return static_cast<T>(x / y);
  else if constexpr (OP == BinaryOp::pow) {
    using std::pow;
    if constexpr (std::is_floating_point_v<T>) return static_cast<T>(pow(x, y));
    else return static_cast<T>(pow(static_cast<double>(x), static_cast<double>(y)));
  }
  else if constexpr (OP == BinaryOp::maximum) return (x != x || x > y) ? x : y;
  else if constexpr (OP == BinaryOp::minimum) return (x != x || x < y) ? x : y;
  else if constexpr (OP == BinaryOp::relu_backward) return y > T(0) ? x : T(0);
  else if constexpr (OP == BinaryOp::eq) return x == y;
  else if constexpr (OP == BinaryOp::ne) return x != y;
  else if constexpr (OP == BinaryOp::lt) return x < y;
  else if constexpr (OP == BinaryOp::le) return x <= y;
  else if constexpr (OP == BinaryOp::gt) return x > y;
  else if constexpr (OP == BinaryOp::ge) return x >= y;
  else static_assert(OP != OP, "unhandled BinaryOp");
}

template <typename Fn>
decltype(auto) dispatch_binary(BinaryOp op, Fn&& fn) {
#define CVG_BINARY_CASE(name) \
  case BinaryOp::name: return fn(std::integral_constant<BinaryOp, BinaryOp::name>{});
  switch (op) {
    CVG_BINARY_CASE(add) CVG_BINARY_CASE(sub) CVG_BINARY_CASE(mul) CVG_BINARY_CASE(div)
    CVG_BINARY_CASE(pow) CVG_BINARY_CASE(maximum) CVG_BINARY_CASE(minimum)
    CVG_BINARY_CASE(relu_backward) CVG_BINARY_CASE(eq)
    CVG_BINARY_CASE(ne) CVG_BINARY_CASE(lt) CVG_BINARY_CASE(le) CVG_BINARY_CASE(gt)
    CVG_BINARY_CASE(ge)
  }
#undef CVG_BINARY_CASE
  return fn(std::integral_constant<BinaryOp, BinaryOp::add>{});
}

}  // namespace cvg
