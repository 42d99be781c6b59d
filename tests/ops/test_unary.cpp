// Registry entries for the unary ops (kernels/unary.h). Hand cases use values whose results
// are exact or known to double precision; gradcheck samples avoid each op's kinks.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <iterator>
#include <string>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

// A spec for a one-input op: a hand case (inputs -> expected) and random gradcheck samples on
// [lo, hi) with |x| >= margin, at several shapes (scalar, empty, vector, matrix, strided view).
OpSpec unary_spec(const std::string& name, std::function<Tensor(const Tensor&)> f,
                  std::vector<double> in, std::vector<double> expected, double lo, double hi,
                  double margin = 0.0, bool gradgrad = true) {
  OpSpec spec;
  spec.name = name;
  spec.fn = [f](const TensorList& xs) { return f(xs[0]); };
  spec.gradgrad = gradgrad;
  spec.samples = [=] {
    std::vector<OpSample> s;
    const int64_t n = static_cast<int64_t>(in.size());
    // Hand cases sit on kinks on purpose (relu at 0, clamp at NaN): forward only.
    s.push_back({"hand", {t64(in, {n})}, t64(expected, {n}, false), false, nullptr});
    s.push_back({"scalar", {away_from_zero64({}, lo, hi, margin, 1)}, Tensor(), true, nullptr});
    s.push_back({"empty", {uniform64({0, 3}, lo, hi, 2)}, Tensor(), true, nullptr});
    s.push_back({"matrix 3x5", {away_from_zero64({3, 5}, lo, hi, margin, 3)}, Tensor(), true, nullptr});
    // A transposed (non-contiguous) input goes through contiguous() and its backward.
    OpSample strided{"transposed 4x3", {away_from_zero64({3, 4}, lo, hi, margin, 4)}, Tensor(), true,
                     [f](const TensorList& xs) { return f(transpose(xs[0], 0, 1)); }};
    s.push_back(strided);
    return s;
  };
  return spec;
}

}  // namespace

const double e = std::exp(1.0);

CVG_REGISTER_OP(unary_spec("neg", [](const Tensor& x) { return neg(x); }, {1, -2, 0}, {-1, 2, 0}, -3, 3));
CVG_REGISTER_OP(unary_spec("exp", [](const Tensor& x) { return exp(x); }, {0, 1, -1},
                           {1, e, 1 / e}, -2, 2));
CVG_REGISTER_OP(unary_spec("log", [](const Tensor& x) { return log(x); }, {1, e, 1 / e},
                           {0, 1, -1}, 0.5, 3));
CVG_REGISTER_OP(unary_spec("sqrt", [](const Tensor& x) { return sqrt(x); }, {4, 0.25, 9},
                           {2, 0.5, 3}, 0.5, 4));
CVG_REGISTER_OP(unary_spec("rsqrt", [](const Tensor& x) { return rsqrt(x); }, {4, 0.25},
                           {0.5, 2}, 0.5, 4));
CVG_REGISTER_OP(unary_spec("abs", [](const Tensor& x) { return abs(x); }, {-2, 3, 0},
                           {2, 3, 0}, -3, 3, 0.1));
CVG_REGISTER_OP(unary_spec("sign", [](const Tensor& x) { return sign(x); }, {-2, 3, 0},
                           {-1, 1, 0}, -3, 3, 0.1));
CVG_REGISTER_OP(unary_spec("square", [](const Tensor& x) { return square(x); }, {-2, 3},
                           {4, 9}, -3, 3));
CVG_REGISTER_OP(unary_spec("reciprocal", [](const Tensor& x) { return reciprocal(x); },
                           {-2, 4}, {-0.5, 0.25}, 0.5, 3));
CVG_REGISTER_OP(unary_spec("sin", [](const Tensor& x) { return sin(x); }, {0}, {0}, -3, 3));
CVG_REGISTER_OP(unary_spec("cos", [](const Tensor& x) { return cos(x); }, {0}, {1}, -3, 3));
// NaN propagates (PyTorch 1.13: relu(nan) = nan); it used to give 0.
CVG_REGISTER_OP(unary_spec("relu", [](const Tensor& x) { return relu(x); },
                           {-1, 0, 2, NAN, -INFINITY, INFINITY}, {0, 0, 2, NAN, 0, INFINITY}, -3,
                           3, 0.1));
CVG_REGISTER_OP(unary_spec("leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.2); },
                           {-1, 0, 2}, {-0.2, 0, 2}, -3, 3, 0.1));
CVG_REGISTER_OP(unary_spec("elu", [](const Tensor& x) { return elu(x, 0.5); }, {-1, 0, 2},
                           {0.5 * (1 / e - 1), 0, 2}, -3, 3, 0.1));
CVG_REGISTER_OP(unary_spec("sigmoid", [](const Tensor& x) { return sigmoid(x); },
                           {0, 1000, -1000}, {0.5, 1, 0}, -4, 4));
CVG_REGISTER_OP(unary_spec("tanh", [](const Tensor& x) { return tanh(x); }, {0, 1000},
                           {0, 1}, -3, 3));
CVG_REGISTER_OP(unary_spec("softplus", [](const Tensor& x) { return softplus(x); },
                           {0, 1000, -1000}, {std::log(2.0), 1000, 0}, -4, 4));
CVG_REGISTER_OP(unary_spec("clamp", [](const Tensor& x) { return clamp(x, -1, 2); },
                           {-3, 0.5, 5, NAN}, {-1, 0.5, 2, NAN}, -3, 3));
CVG_REGISTER_OP(unary_spec("pow_scalar", [](const Tensor& x) { return pow(x, 3.0); },
                           {2, -1}, {8, -1}, -2, 2));
CVG_REGISTER_OP(unary_spec("pow_scalar_fractional", [](const Tensor& x) { return pow(x, 0.5); },
                           {4, 9}, {2, 3}, 0.5, 3));
CVG_REGISTER_OP(unary_spec("add_scalar", [](const Tensor& x) { return x + 2.5; }, {1, -1},
                           {3.5, 1.5}, -3, 3));
CVG_REGISTER_OP(unary_spec("mul_scalar", [](const Tensor& x) { return 3.0 * x; }, {1, -1},
                           {3, -3}, -3, 3));
CVG_REGISTER_OP(unary_spec("div_scalar", [](const Tensor& x) { return x / 4.0; }, {1, -2},
                           {0.25, -0.5}, -3, 3));
CVG_REGISTER_OP(unary_spec("rsub_scalar", [](const Tensor& x) { return 1.0 - x; }, {1, -2},
                           {0, 3}, -3, 3));

// The CPU loop computes exp, sigmoid and elu with vec_exp (unary_cpu.cpp), in
// vectorised loops (several vector widths, chosen at run time) with scalar tails and chunks
// split across threads. Checked element by element against unary_eval, the scalar reference
// with std::exp, on lengths that leave every kind of tail and span several chunks, over the
// whole range of exp and at the special values.
TEMPLATE_TEST_CASE("unary exp family: the CPU loop against unary_eval", "[ops][unary]", float,
                   double) {
  using T = TestType;
  using L = std::numeric_limits<T>;
  const T eps = L::epsilon();
  const T alpha = T(0.5);
  UnaryParams p;
  p.a = static_cast<double>(alpha);
  const T specials[] = {T(0), T(-0.0), L::infinity(), -L::infinity(), L::quiet_NaN(), L::max(),
                        L::lowest(), L::denorm_min(), T(1e-30), T(-1e-30)};
  for (int64_t n : {1, 3, 15, 17, 31, 33, 1000, 70001}) {
    std::vector<T> v(static_cast<size_t>(n));
    // A sweep over [-800, 800] (past both ends of exp's range for float and double), with
    // special values at scattered positions.
    for (int64_t i = 0; i < n; ++i)
      v[i] = n == 1 ? T(0.25) : T(-800) + T(1600) * static_cast<T>(i) / static_cast<T>(n - 1);
    for (size_t k = 0; k < std::size(specials); ++k)
      v[(k * 7919) % v.size()] = specials[k];
    const Tensor x = from_vector<T>(v, {n}, TensorOptions{}.with_dtype(dtype_of<T>()));
    const std::vector<T> got_exp = exp(x).template to_vector<T>();
    const std::vector<T> got_sig = sigmoid(x).template to_vector<T>();
    const std::vector<T> got_elu = elu(x, static_cast<double>(alpha)).template to_vector<T>();
    for (int64_t i = 0; i < n; ++i) {
      const T xi = v[i];
      INFO("n = " << n << ", x = " << xi);
      // Relative to the result, with an absolute floor of a few epsilon where a difference
      // like exp(x) - 1 cancels, and of a few subnormal steps where the result underflows.
      auto close = [&](T got, T want, T floor) {
        if (std::isnan(want)) return std::isnan(got);
        if (std::isinf(want)) return got == want;
        return std::fabs(got - want) <= T(8) * eps * std::fabs(want) + floor;
      };
      const T tiny = T(8) * L::denorm_min();
      CHECK(close(got_exp[i], unary_eval<UnaryOp::exp, T>(xi, p), tiny));
      CHECK(close(got_sig[i], unary_eval<UnaryOp::sigmoid, T>(xi, p), tiny));
      CHECK(close(got_elu[i], unary_eval<UnaryOp::elu, T>(xi, p), T(4) * eps * alpha));
    }
  }
}

TEST_CASE("elu: the gradient stays finite where e^x overflows", "[ops][unary]") {
  // x = 100 overflows e^x in float32; the masked-out branch must not become 0 * inf = NaN.
  Tensor x = tensor({100.0, 1.0, -1.0, -100.0}, {4});
  x.set_requires_grad(true);
  const Tensor g = grad({sum(elu(x, 0.5))}, {x})[0];
  const std::vector<float> v = g.to_vector<float>();
  CHECK(v[0] == 1.0f);
  CHECK(v[1] == 1.0f);
  CHECK(v[2] == Approx(0.5 * std::exp(-1.0)).epsilon(1e-6));
  CHECK(v[3] >= 0.0f);
  CHECK(v[3] < 1e-30f);  // 0.5 e^-100 underflows to a subnormal
}

// Integer tensors with the scalar ops (rule at the top of kernels/unary.h): the result keeps the
// integer dtype; a scalar (or clamp bound) that the dtype cannot hold exactly is an Error naming
// the op, the argument, the value and the dtype (it used to be cast to the dtype first: int64
// [3, 5] * 0.5 gave [0, 0], clamp(int, -1.5, 3.5) gave 3 for 3.5's 3, int32 * 1e10 was an
// undefined double -> int conversion). Overflow wraps modulo 2^bits; the wrapped expectations
// match PyTorch 1.13 (torch.tensor(..., dtype=...) op scalar with a Python int).
TEST_CASE("unary scalar ops on integer tensors: exact scalars, wrap-around, refusals",
          "[ops][unary]") {
  struct Case {
    const char* what;
    DType dt;
    std::vector<int64_t> in;
    std::function<Tensor(const Tensor&)> f;
    std::vector<int64_t> expected;  // when error is empty
    std::string error;              // a substring of the expected Error
  };
  constexpr int64_t i32min = std::numeric_limits<int32_t>::min();
  constexpr int64_t i64min = std::numeric_limits<int64_t>::min();
  const auto I64 = DType::int64, I32 = DType::int32, U8 = DType::uint8;
  const std::vector<Case> cases = {
      {"int64 * 2.0", I64, {3, 5}, [](const Tensor& x) { return x * 2.0; }, {6, 10}, ""},
      {"int64 + 2.0", I64, {3, 5}, [](const Tensor& x) { return x + 2.0; }, {5, 7}, ""},
      {"int64 - 1.0", I64, {3, 5}, [](const Tensor& x) { return x - 1.0; }, {2, 4}, ""},
      {"10.0 - int64", I64, {3, 5}, [](const Tensor& x) { return 10.0 - x; }, {7, 5}, ""},
      {"clamp int64 -1, 3", I64, {-3, 0, 5}, [](const Tensor& x) { return clamp(x, -1, 3); },
       {-1, 0, 3}, ""},
      // -1 is not a uint8, but sub negates its scalar modulo 2^8: 10 + 255 wraps to 9.
      {"uint8 - 1.0", U8, {10}, [](const Tensor& x) { return x - 1.0; }, {9}, ""},
      {"1.0 - uint8 wraps", U8, {3}, [](const Tensor& x) { return 1.0 - x; }, {254}, ""},
      {"uint8 + 10.0 wraps", U8, {250}, [](const Tensor& x) { return x + 10.0; }, {4}, ""},
      {"int32 * 4.0 wraps", I32, {int64_t{1} << 30}, [](const Tensor& x) { return x * 4.0; },
       {0}, ""},
      {"neg int32 min wraps", I32, {i32min}, [](const Tensor& x) { return neg(x); }, {i32min}, ""},
      {"abs int32 min wraps", I32, {i32min}, [](const Tensor& x) { return abs(x); }, {i32min}, ""},
      {"square int32 wraps", I32, {65536}, [](const Tensor& x) { return square(x); }, {0}, ""},
      {"int64 - (-2^63) wraps", I64, {1}, [](const Tensor& x) { return x - (-9223372036854775808.0); },
       {i64min + 1}, ""},
      {"int64 * 0.5", I64, {3, 5}, [](const Tensor& x) { return x * 0.5; }, {},
       "mul_scalar: the scalar 0.5 is not exactly representable in the int64 tensor's dtype"},
      {"int64 * 1.99", I64, {3, 5}, [](const Tensor& x) { return x * 1.99; }, {},
       "mul_scalar: the scalar 1.99 is not"},
      {"int64 + 0.5", I64, {3, 5}, [](const Tensor& x) { return x + 0.5; }, {},
       "add_scalar: the scalar 0.5 is not exactly representable in the int64"},
      {"int64 - 0.5", I64, {3, 5}, [](const Tensor& x) { return x - 0.5; }, {},
       "sub: the scalar 0.5 is not exactly representable in the int64"},
      {"0.5 - int64", I64, {3, 5}, [](const Tensor& x) { return 0.5 - x; }, {},
       "rsub_scalar: the scalar 0.5 is not exactly representable in the int64"},
      {"clamp int64 lo -1.5", I64, {3, 5}, [](const Tensor& x) { return clamp(x, -1.5, 3.5); }, {},
       "clamp: the lo -1.5 is not exactly representable in the int64"},
      {"clamp int64 hi 3.5", I64, {3, 5}, [](const Tensor& x) { return clamp(x, -1, 3.5); }, {},
       "clamp: the hi 3.5 is not exactly representable in the int64"},
      {"clamp uint8 hi 300", U8, {3}, [](const Tensor& x) { return clamp(x, 0, 300); }, {},
       "clamp: the hi 300 is not exactly representable in the uint8"},
      {"int32 * 1e10", I32, {3}, [](const Tensor& x) { return x * 1e10; }, {},
       "mul_scalar: the scalar 1e+10 is not exactly representable in the int32"},
      {"int32 + 2^31", I32, {3}, [](const Tensor& x) { return x + 2147483648.0; }, {},
       "add_scalar: the scalar 2147483648 is not exactly representable in the int32"},
      {"int64 * 2^63", I64, {3}, [](const Tensor& x) { return x * 9223372036854775808.0; }, {},
       "mul_scalar: the scalar 9223372036854775808 is not exactly representable in the int64"},
      {"uint8 * -1.0", U8, {10}, [](const Tensor& x) { return x * -1.0; }, {},
       "mul_scalar: the scalar -1 is not exactly representable in the uint8"},
      {"uint8 + 256.0", U8, {10}, [](const Tensor& x) { return x + 256.0; }, {},
       "add_scalar: the scalar 256 is not exactly representable in the uint8"},
      {"int64 + NaN", I64, {1}, [](const Tensor& x) { return x + std::nan(""); }, {},
       "add_scalar: the scalar nan is not exactly representable in the int64"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const Tensor x = from_vector<int64_t>(c.in, {static_cast<int64_t>(c.in.size())},
                                          TensorOptions{}.with_dtype(I64)).to(c.dt);
    if (!c.error.empty()) {
      CHECK_THROWS_WITH(c.f(x), Catch::Matchers::Contains(c.error));
      continue;
    }
    const Tensor y = c.f(x);
    CHECK(y.dtype() == c.dt);
    const Tensor y64 = y.to(I64).contiguous();
    REQUIRE(y64.numel() == static_cast<int64_t>(c.expected.size()));
    for (size_t i = 0; i < c.expected.size(); ++i) CHECK(y64.data<int64_t>()[i] == c.expected[i]);
  }
}

// relu(NaN) = NaN, in every dtype and through the vectorised CPU loop (lengths with tails and
// several threads' chunks, NaN at scattered positions), and its gradient there is 0
// (relu_backward passes g only where y > 0; PyTorch 1.13 passes g at NaN, see unary_math.h).
TEMPLATE_TEST_CASE("relu: NaN propagates, its gradient is 0", "[ops][unary]", float, double) {
  using T = TestType;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for (int64_t n : {1, 7, 33, 70001}) {
    INFO("n = " << n);
    std::vector<T> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = (i % 3 == 0) ? nan : (i % 3 == 1 ? T(-1.5) : T(2.5));
    const Tensor x = from_vector<T>(v, {n}, TensorOptions{}.with_dtype(dtype_of<T>()))
                         .set_requires_grad(true);
    const Tensor y = relu(x);
    const std::vector<T> got = y.to_vector<T>();
    for (int64_t i = 0; i < n; ++i) {
      if (i % 3 == 0) CHECK(std::isnan(got[i]));
      else CHECK(got[i] == (i % 3 == 1 ? T(0) : T(2.5)));
    }
    sum(y * 3.0).backward();
    const std::vector<T> g = x.grad().to_vector<T>();
    for (int64_t i = 0; i < n; ++i) CHECK(g[i] == (i % 3 == 2 ? T(3) : T(0)));
  }
}
