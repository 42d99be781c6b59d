// Registry entries for the binary ops and where (kernels/binary.h): hand cases with
// broadcasting, and gradchecks over broadcast shapes (row, column, scalar, size-1 and empty dims)
// so that sum_to's reduction of broadcast gradients is covered.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

using BinFn = std::function<Tensor(const Tensor&, const Tensor&)>;

// lo/hi bound both inputs; b_lo keeps the second input positive where the op needs it.
OpSpec binary_spec(const std::string& name, BinFn f, std::vector<double> a, std::vector<double> b,
                   std::vector<double> expected, double lo, double hi, double b_lo) {
  OpSpec spec;
  spec.name = name;
  spec.fn = [f](const TensorList& xs) { return f(xs[0], xs[1]); };
  spec.samples = [=] {
    std::vector<OpSample> s;
    // Hand case: a is [2, 2], b is [2] broadcast along rows.
    s.push_back({"hand [2,2] x [2]", {t64(a, {2, 2}), t64(b, {2})}, t64(expected, {2, 2}, false),
                 false, nullptr});
    s.push_back({"same shape 3x4", {uniform64({3, 4}, lo, hi, 11), uniform64({3, 4}, b_lo, hi, 12)},
                 Tensor(), true, nullptr});
    s.push_back({"row broadcast 3x4 x 4", {uniform64({3, 4}, lo, hi, 13), uniform64({4}, b_lo, hi, 14)},
                 Tensor(), true, nullptr});
    s.push_back({"outer 3x1 x 1x4", {uniform64({3, 1}, lo, hi, 15), uniform64({1, 4}, b_lo, hi, 16)},
                 Tensor(), true, nullptr});
    s.push_back({"scalar x 2x3", {uniform64({}, lo, hi, 17), uniform64({2, 3}, b_lo, hi, 18)},
                 Tensor(), true, nullptr});
    s.push_back({"empty 0x3 x 3", {uniform64({0, 3}, lo, hi, 19), uniform64({3}, b_lo, hi, 20)},
                 Tensor(), true, nullptr});
    s.push_back({"transposed 4x3 x 3", {uniform64({3, 4}, lo, hi, 21), uniform64({3}, b_lo, hi, 22)},
                 Tensor(), true,
                 [f](const TensorList& xs) { return f(transpose(xs[0], 0, 1), xs[1]); }});
    return s;
  };
  return spec;
}

}  // namespace

CVG_REGISTER_OP(binary_spec("add", [](const Tensor& a, const Tensor& b) { return a + b; },
                            {1, 2, 3, 4}, {10, 20}, {11, 22, 13, 24}, -2, 2, -2));
CVG_REGISTER_OP(binary_spec("sub", [](const Tensor& a, const Tensor& b) { return a - b; },
                            {1, 2, 3, 4}, {10, 20}, {-9, -18, -7, -16}, -2, 2, -2));
CVG_REGISTER_OP(binary_spec("mul", [](const Tensor& a, const Tensor& b) { return a * b; },
                            {1, 2, 3, 4}, {10, -1}, {10, -2, 30, -4}, -2, 2, -2));
CVG_REGISTER_OP(binary_spec("div", [](const Tensor& a, const Tensor& b) { return a / b; },
                            {1, 2, 3, 4}, {2, -4}, {0.5, -0.5, 1.5, -1}, -2, 2, 0.5));
CVG_REGISTER_OP(binary_spec("pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); },
                            {1, 2, 3, 4}, {2, 0.5}, {1, std::sqrt(2.0), 9, 2}, 0.5, 2, 0.5));
CVG_REGISTER_OP(binary_spec("maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
                            {1, 5, NAN, 4}, {2, 3}, {2, 5, NAN, 4}, -2, 2, -2));
// relu_backward(g, y): rows [1, inf] and [NaN, 4] against y = [0.5, -1]: the off unit's gradient
// is 0 even when g is inf (g * mask would give NaN); an on unit passes NaN on.
CVG_REGISTER_OP(binary_spec("relu_backward",
                            [](const Tensor& g, const Tensor& y) { return relu_backward(g, y); },
                            {1, INFINITY, NAN, 4}, {0.5, -1}, {1, 0, NAN, 0}, -2, 2, -2));
CVG_REGISTER_OP(binary_spec("minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
                            {1, 5, NAN, 4}, {2, 3}, {1, 3, NAN, 3}, -2, 2, -2));

// pow's gradients where the formulas meet 0 * inf: d/da at b = 0 and d/db at a = 0 <= b are 0
// (the limits; PyTorch's values), d/db at a = 0 > b stays -inf; the gradients' own derivatives
// (create_graph) are finite at those points. Columns: (a, b) = (0, 2), (0, 0), (2, 0), (0, -1),
// (2, 3).
TEST_CASE("pow: gradients at a zero base or a zero exponent", "[ops][binary]") {
  const Tensor a = t64({0, 0, 2, 0, 2}, {5}), b = t64({2, 0, 0, -1, 3}, {5});
  const TensorList g = grad({sum(pow(a, b))}, {a, b}, {}, {.create_graph = true});
  const std::vector<double> ga = g[0].to_vector<double>(), gb = g[1].to_vector<double>();
  const std::vector<double> ga_expected = {0, 0, 0, -INFINITY, 12};
  for (int i : {0, 1, 2, 4}) CHECK(ga[i] == ga_expected[i]);
  CHECK(std::isinf(ga[3]));
  CHECK(gb[0] == 0);
  CHECK(gb[1] == 0);
  CHECK(gb[2] == std::log(2.0));
  CHECK(gb[3] == -INFINITY);
  CHECK(gb[4] == Approx(8 * std::log(2.0)).epsilon(1e-15));
  // Second derivatives of the finite columns: d2/da2 = b (b - 1) a^(b - 2), d2/db2 = a^b ln^2 a.
  const TensorList gaa = grad({sum(g[0] * t64({1, 1, 1, 0, 1}, {5}, false))}, {a});
  const TensorList gbb = grad({sum(g[1] * t64({1, 1, 1, 0, 1}, {5}, false))}, {b});
  const std::vector<double> aa = gaa[0].to_vector<double>(), bb = gbb[0].to_vector<double>();
  const double l2 = std::log(2.0);
  CHECK(aa[0] == 2);
  CHECK(aa[1] == 0);
  CHECK(aa[2] == 0);
  CHECK(aa[4] == Approx(12).epsilon(1e-15));
  CHECK(bb[0] == 0);
  CHECK(bb[1] == 0);
  CHECK(bb[2] == Approx(l2 * l2).epsilon(1e-15));
  CHECK(bb[4] == Approx(8 * l2 * l2).epsilon(1e-15));
}

namespace {
OpSpec comparison_spec(const std::string& name, BinFn f, std::vector<double> expected) {
  OpSpec spec;
  spec.name = name;
  spec.differentiable = false;
  spec.fn = [f](const TensorList& xs) { return f(xs[0], xs[1]).to(DType::float64); };
  spec.samples = [=] {
    return std::vector<OpSample>{
        {"hand [2,2] x [2]", {t64({1, 2, 3, 4}, {2, 2}, false), t64({1, 3}, {2}, false)},
         t64(expected, {2, 2}, false), false, nullptr},
        {"random 3x4 x 4", {uniform64({3, 4}, -1, 1, 31, false), uniform64({4}, -1, 1, 32, false)},
         Tensor(), false, nullptr}};
  };
  return spec;
}
}  // namespace

// a = [[1, 2], [3, 4]] against b = [1, 3] per row.
CVG_REGISTER_OP(comparison_spec("eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }, {1, 0, 0, 0}));
CVG_REGISTER_OP(comparison_spec("ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }, {0, 1, 1, 1}));
CVG_REGISTER_OP(comparison_spec("lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }, {0, 1, 0, 0}));
CVG_REGISTER_OP(comparison_spec("le", [](const Tensor& a, const Tensor& b) { return le(a, b); }, {1, 1, 0, 0}));
CVG_REGISTER_OP(comparison_spec("gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }, {0, 0, 1, 1}));
CVG_REGISTER_OP(comparison_spec("ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }, {1, 0, 1, 1}));

CVG_REGISTER_OP(OpSpec{
    "where",
    [](const TensorList& xs) { return where(gt(xs[0], zeros({}, xs[0].options())), xs[1], xs[2]); },
    [] {
      return std::vector<OpSample>{
          {"hand", {t64({1, -1, 2, -2}, {2, 2}, false), t64({1, 2, 3, 4}, {2, 2}), t64({10, 20}, {2})},
           t64({1, 20, 3, 20}, {2, 2}, false), true, nullptr},
          {"broadcast cond 3x1, a 1x4, b scalar",
           {uniform64({3, 1}, -1, 1, 41, false), uniform64({1, 4}, -1, 1, 42), uniform64({}, -1, 1, 43)},
           Tensor(), true, nullptr}};
    }});
