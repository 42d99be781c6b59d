// Registry entries and hand tests for the reductions (kernels/reduce.h). Expected values are
// worked out by hand (small integers, or closed forms evaluated with <cmath>); gradcheck samples
// avoid kinks: amax/max/argmax samples have distinct values (distinct64), norm samples are away
// from 0.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

using Unary = std::function<Tensor(const Tensor&)>;

// A sample that applies f to its single input.
OpSample one(const std::string& label, Tensor x, Tensor expected, bool gradcheck, Unary f) {
  return OpSample{label, {std::move(x)}, std::move(expected), gradcheck,
                  [f](const TensorList& xs) { return f(xs[0]); }};
}

OpSpec spec_of(const std::string& name, std::function<std::vector<OpSample>()> samples,
               bool differentiable = true) {
  OpSpec spec;
  spec.name = name;
  spec.fn = [name](const TensorList&) -> Tensor {
    fail("test_reduce: ", name, " samples carry their own function");
  };
  spec.samples = std::move(samples);
  spec.differentiable = differentiable;
  return spec;
}

// [[1, 2, 3], [4, 5, 6]]
Tensor m23(bool grad = true) { return t64({1, 2, 3, 4, 5, 6}, {2, 3}, grad); }
Tensor c(const std::vector<double>& v, const Shape& s) { return t64(v, s, false); }

// Error text of f, which must throw cvg::Error (anything else fails the test case).
}  // namespace

// ---------------------------------------------------------------------------------------------
// sum, mean, var, std_dev

CVG_REGISTER_OP(spec_of("sum", [] {
  return std::vector<OpSample>{
      one("all dims", m23(), c({21}, {}), true, [](const Tensor& x) { return sum(x); }),
      one("dim 1", m23(), c({6, 15}, {2}), true, [](const Tensor& x) { return sum(x, {1}); }),
      one("dim 0 keepdim", m23(), c({5, 7, 9}, {1, 3}), true,
          [](const Tensor& x) { return sum(x, {0}, true); }),
      one("dim -1", m23(), c({6, 15}, {2}), true, [](const Tensor& x) { return sum(x, {-1}); }),
      one("dims {0, 1} listed", m23(), c({21}, {}), true,
          [](const Tensor& x) { return sum(x, {1, 0}); }),
      one("size-1 dim", t64({1, 2, 3, 4, 5, 6}, {2, 1, 3}), c({1, 2, 3, 4, 5, 6}, {2, 3}), true,
          [](const Tensor& x) { return sum(x, {1}); }),
      one("empty dim gives zeros", t64({}, {0, 3}), c({0, 0, 0}, {3}), true,
          [](const Tensor& x) { return sum(x, {0}); }),
      one("0-d with dim 0", t64({2.5}, {}), c({2.5}, {}), true,
          [](const Tensor& x) { return sum(x, {0}); }),
      one("3-d dims {0, 2} keepdim", uniform64({3, 4, 5}, -1, 1, 101), Tensor(), true,
          [](const Tensor& x) { return sum(x, {0, -1}, true); }),
      one("3-d empty dims = all", uniform64({2, 3, 4}, -1, 1, 102), Tensor(), true,
          [](const Tensor& x) { return sum(x, {}); }),
      one("transposed input dim 0", uniform64({3, 4}, -1, 1, 103), Tensor(), true,
          [](const Tensor& x) { return sum(transpose(x, 0, 1), {0}); }),
  };
}));

CVG_REGISTER_OP(spec_of("mean", [] {
  return std::vector<OpSample>{
      one("all dims", m23(), c({3.5}, {}), true, [](const Tensor& x) { return mean(x); }),
      one("dim 1", m23(), c({2, 5}, {2}), true, [](const Tensor& x) { return mean(x, {1}); }),
      one("dim 0 keepdim", m23(), c({2.5, 3.5, 4.5}, {1, 3}), true,
          [](const Tensor& x) { return mean(x, {0}, true); }),
      one("3-d dims {1, 2}", uniform64({2, 3, 4}, -1, 1, 111), Tensor(), true,
          [](const Tensor& x) { return mean(x, {1, 2}); }),
  };
}));

CVG_REGISTER_OP(spec_of("var", [] {
  // [1, 2, 3, 4]: mean 2.5, squared deviations sum to 5.
  // [[1, 2, 3], [4, 6, 8]]: rows have mean 2 and 6, squared deviations 2 and 8;
  // columns (1, 4), (2, 6), (3, 8) have squared deviations 4.5, 8, 12.5.
  return std::vector<OpSample>{
      one("unbiased all", t64({1, 2, 3, 4}, {4}), c({5.0 / 3.0}, {}), true,
          [](const Tensor& x) { return var(x); }),
      one("biased all", t64({1, 2, 3, 4}, {4}), c({1.25}, {}), true,
          [](const Tensor& x) { return var(x, {}, false); }),
      one("rows unbiased", t64({1, 2, 3, 4, 6, 8}, {2, 3}), c({1, 4}, {2}), true,
          [](const Tensor& x) { return var(x, {1}); }),
      one("columns biased keepdim", t64({1, 2, 3, 4, 6, 8}, {2, 3}), c({2.25, 4, 6.25}, {1, 3}),
          true, [](const Tensor& x) { return var(x, {0}, false, true); }),
      // Welford keeps a large common offset from cancelling the deviations away. (Forward
      // only: central differences at 1e6 lose too many digits to check the gradient.)
      one("offset 1e6", t64({1e6 + 1, 1e6 + 2, 1e6 + 3}, {3}), c({1}, {}), false,
          [](const Tensor& x) { return var(x); }),
      one("one sample unbiased is NaN", t64({3}, {1}), c({kNaN}, {}), false,
          [](const Tensor& x) { return var(x); }),
      one("3-d dims {0, 2}", uniform64({3, 4, 5}, -1, 1, 121), Tensor(), true,
          [](const Tensor& x) { return var(x, {0, 2}); }),
      one("transposed, dim 1 biased", uniform64({4, 3}, -1, 1, 122), Tensor(), true,
          [](const Tensor& x) { return var(transpose(x, 0, 1), {1}, false); }),
  };
}));

CVG_REGISTER_OP(spec_of("std_dev", [] {
  return std::vector<OpSample>{
      one("biased all", t64({1, 2, 3, 4}, {4}), c({std::sqrt(1.25)}, {}), true,
          [](const Tensor& x) { return std_dev(x, {}, false); }),
      one("rows unbiased", t64({1, 2, 3, 4, 6, 8}, {2, 3}), c({1, 2}, {2}), true,
          [](const Tensor& x) { return std_dev(x, {1}); }),
      one("3-d dim 1 keepdim", uniform64({2, 5, 3}, -1, 1, 131), Tensor(), true,
          [](const Tensor& x) { return std_dev(x, {1}, true, true); }),
  };
}));

// ---------------------------------------------------------------------------------------------
// amax, amin, max, min, argmax, argmin

namespace {
// [[1, 5, 3], [7, 2, 7]]: ties only in the hand cases (forward only).
Tensor ties23() { return t64({1, 5, 3, 7, 2, 7}, {2, 3}); }
}  // namespace

CVG_REGISTER_OP(spec_of("amax", [] {
  return std::vector<OpSample>{
      one("all dims (tie)", ties23(), c({7}, {}), false, [](const Tensor& x) { return amax(x); }),
      one("dim 1 (tie)", ties23(), c({5, 7}, {2}), false,
          [](const Tensor& x) { return amax(x, {1}); }),
      one("dim 0 keepdim", ties23(), c({7, 5, 7}, {1, 3}), true,
          [](const Tensor& x) { return amax(x, {0}, true); }),
      one("NaN propagates", t64({1, kNaN, 3, 4}, {2, 2}), c({kNaN, 4}, {2}), false,
          [](const Tensor& x) { return amax(x, {1}); }),
      one("-inf row", t64({-kInf, -kInf}, {2}), c({-kInf}, {}), false,
          [](const Tensor& x) { return amax(x); }),
      one("3-d dims {0, 2}", distinct64({3, 4, 5}, 0.1, 141), Tensor(), true,
          [](const Tensor& x) { return amax(x, {0, 2}); }),
      one("transposed dim -1 keepdim", distinct64({4, 3}, 0.1, 142), Tensor(), true,
          [](const Tensor& x) { return amax(transpose(x, 0, 1), {-1}, true); }),
      one("all dims", distinct64({3, 4}, 0.1, 143), Tensor(), true,
          [](const Tensor& x) { return amax(x); }),
  };
}));

CVG_REGISTER_OP(spec_of("amin", [] {
  return std::vector<OpSample>{
      one("all dims", ties23(), c({1}, {}), true, [](const Tensor& x) { return amin(x); }),
      one("dim 1", ties23(), c({1, 2}, {2}), true, [](const Tensor& x) { return amin(x, {1}); }),
      one("dim 0 keepdim (no ties)", ties23(), c({1, 2, 3}, {1, 3}), true,
          [](const Tensor& x) { return amin(x, {0}, true); }),
      one("NaN propagates", t64({1, kNaN, 3, 4}, {2, 2}), c({kNaN, 3}, {2}), false,
          [](const Tensor& x) { return amin(x, {1}); }),
      one("3-d dims {1, 2}", distinct64({3, 4, 5}, 0.1, 151), Tensor(), true,
          [](const Tensor& x) { return amin(x, {1, 2}); }),
  };
}));

CVG_REGISTER_OP(spec_of("max", [] {
  return std::vector<OpSample>{
      one("dim 1 (tie)", ties23(), c({5, 7}, {2}), false,
          [](const Tensor& x) { return max(x, 1).values; }),
      one("dim 0 keepdim", ties23(), c({7, 5, 7}, {1, 3}), true,
          [](const Tensor& x) { return max(x, 0, true).values; }),
      one("dim -1 NaN", t64({1, kNaN, 3, 4}, {2, 2}), c({kNaN, 4}, {2}), false,
          [](const Tensor& x) { return max(x, -1).values; }),
      one("0-d", t64({2.5}, {}), c({2.5}, {}), true, [](const Tensor& x) { return max(x, 0).values; }),
      one("3-d dim 1", distinct64({3, 4, 5}, 0.1, 161), Tensor(), true,
          [](const Tensor& x) { return max(x, 1).values; }),
      one("3-d dim 2 keepdim", distinct64({3, 4, 5}, 0.1, 162), Tensor(), true,
          [](const Tensor& x) { return max(x, 2, true).values; }),
      one("transposed dim 0", distinct64({4, 3}, 0.1, 163), Tensor(), true,
          [](const Tensor& x) { return max(transpose(x, 0, 1), 0).values; }),
  };
}));

CVG_REGISTER_OP(spec_of("min", [] {
  return std::vector<OpSample>{
      one("dim 1", ties23(), c({1, 2}, {2}), true, [](const Tensor& x) { return min(x, 1).values; }),
      one("dim 0 keepdim", ties23(), c({1, 2, 3}, {1, 3}), true,
          [](const Tensor& x) { return min(x, 0, true).values; }),
      one("3-d dim 0", distinct64({3, 4, 5}, 0.1, 171), Tensor(), true,
          [](const Tensor& x) { return min(x, 0).values; }),
  };
}));

namespace {
// Indices as float64, so that the registry's float comparisons apply.
Unary indices_of(std::function<Tensor(const Tensor&)> f) {
  return [f](const Tensor& x) { return f(x).to(DType::float64); };
}
}  // namespace

CVG_REGISTER_OP(spec_of("max_min_indices", [] {
  return std::vector<OpSample>{
      // Row [7, 2, 7] ties: the first 7 (index 0) wins.
      one("max dim 1, tie -> first", ties23(), c({1, 0}, {2}), false,
          indices_of([](const Tensor& x) { return max(x, 1).indices; })),
      one("min dim 0 keepdim", ties23(), c({0, 1, 0}, {1, 3}), false,
          indices_of([](const Tensor& x) { return min(x, 0, true).indices; })),
      one("max: first NaN wins", t64({1, kNaN, 3, kNaN}, {4}), c({1}, {}), false,
          indices_of([](const Tensor& x) { return max(x, 0).indices; })),
      one("min: first NaN wins", t64({kNaN, -5, kNaN}, {3}), c({0}, {}), false,
          indices_of([](const Tensor& x) { return min(x, 0).indices; })),
  };
}, /*differentiable=*/false));

CVG_REGISTER_OP(spec_of("argmax", [] {
  return std::vector<OpSample>{
      one("dim 1 ties", t64({1, 5, 5, 7, 2, 7}, {2, 3}), c({1, 0}, {2}), false,
          indices_of([](const Tensor& x) { return argmax(x, 1); })),
      one("dim 0 keepdim", ties23(), c({1, 0, 1}, {1, 3}), false,
          indices_of([](const Tensor& x) { return argmax(x, 0, true); })),
      one("flattened", t64({1, 5, 7, 2}, {2, 2}), c({2}, {}), false,
          indices_of([](const Tensor& x) { return argmax(x); })),
      one("NaN row and -inf row", t64({1, kNaN, kNaN, -kInf, -kInf, -kInf}, {2, 3}), c({1, 0}, {2}),
          false, indices_of([](const Tensor& x) { return argmax(x, -1); })),
      one("0-d", t64({3}, {}), c({0}, {}), false, indices_of([](const Tensor& x) { return argmax(x, 0); })),
      one("random 3x4x5 dim 1", distinct64({3, 4, 5}, 0.1, 181), Tensor(), false,
          indices_of([](const Tensor& x) { return argmax(x, 1); })),
  };
}, /*differentiable=*/false));

CVG_REGISTER_OP(spec_of("argmin", [] {
  return std::vector<OpSample>{
      one("dim 1 ties", t64({1, 5, 1, 7, 2, 2}, {2, 3}), c({0, 1}, {2}), false,
          indices_of([](const Tensor& x) { return argmin(x, 1); })),
      one("flattened", t64({4, 5, -7, 2}, {2, 2}), c({2}, {}), false,
          indices_of([](const Tensor& x) { return argmin(x); })),
      one("NaN and +inf", t64({1, 0, kNaN, kInf, kInf, kInf}, {2, 3}), c({2, 0}, {2}), false,
          indices_of([](const Tensor& x) { return argmin(x, 1); })),
      one("random 3x4x5 dim 2", distinct64({3, 4, 5}, 0.1, 191), Tensor(), false,
          indices_of([](const Tensor& x) { return argmin(x, 2); })),
  };
}, /*differentiable=*/false));

// ---------------------------------------------------------------------------------------------
// logsumexp, norm

CVG_REGISTER_OP(spec_of("logsumexp", [] {
  const double l2 = std::log(2.0);
  return std::vector<OpSample>{
      one("zeros", t64({0, 0}, {2}), c({l2}, {}), true, [](const Tensor& x) { return logsumexp(x); }),
      one("1, 2, 3", t64({1, 2, 3}, {3}),
          c({std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0))}, {}), true,
          [](const Tensor& x) { return logsumexp(x); }),
      // exp(1000) overflows double; the shifted form does not.
      one("large values dim 1", t64({1000, 1000, -1000, -1000}, {2, 2}), c({1000 + l2, -1000 + l2}, {2}),
          true, [](const Tensor& x) { return logsumexp(x, {1}); }),
      one("-inf row and +inf", t64({-kInf, -kInf, kInf, 1}, {2, 2}), c({-kInf, kInf}, {2}), false,
          [](const Tensor& x) { return logsumexp(x, {1}); }),
      one("NaN", t64({1, kNaN}, {2}), c({kNaN}, {}), false, [](const Tensor& x) { return logsumexp(x); }),
      one("3-d dims {0, 2} keepdim", uniform64({3, 4, 5}, -2, 2, 201), Tensor(), true,
          [](const Tensor& x) { return logsumexp(x, {0, 2}, true); }),
      one("transposed dim 1", uniform64({4, 3}, -2, 2, 202), Tensor(), true,
          [](const Tensor& x) { return logsumexp(transpose(x, 0, 1), {1}); }),
  };
}));

CVG_REGISTER_OP(spec_of("norm", [] {
  return std::vector<OpSample>{
      one("p=2 [3, 4]", t64({3, -4}, {2}), c({5}, {}), true, [](const Tensor& x) { return norm(x); }),
      one("p=1 [3, -4]", t64({3, -4}, {2}), c({7}, {}), true, [](const Tensor& x) { return norm(x, 1.0); }),
      one("p=3 [1, 2]", t64({1, 2}, {2}), c({std::cbrt(9.0)}, {}), true,
          [](const Tensor& x) { return norm(x, 3.0); }),
      one("p=inf", t64({-7, 3}, {2}), c({7}, {}), true,
          [](const Tensor& x) { return norm(x, std::numeric_limits<double>::infinity()); }),
      // A zero row: forward 0 (and a kink, so no gradcheck).
      one("p=2 dim 1 with a zero row", t64({3, 4, 0, 0}, {2, 2}), c({5, 0}, {2}), false,
          [](const Tensor& x) { return norm(x, 2.0, {1}); }),
      // Squares of 3e30 overflow float32; the scaled accumulation does not (the [cuda] column
      // checks the float32 GPU kernel on it).
      one("p=2 large", t64({3e30, 4e30}, {2}), c({5e30}, {}), false,
          [](const Tensor& x) { return norm(x); }),
      one("p=2 3-d dims {0, 2}", away_from_zero64({3, 4, 5}, -2, 2, 0.1, 211), Tensor(), true,
          [](const Tensor& x) { return norm(x, 2.0, {0, 2}); }),
      one("p=1 dim 1 keepdim", away_from_zero64({3, 4}, -2, 2, 0.1, 212), Tensor(), true,
          [](const Tensor& x) { return norm(x, 1.0, {1}, true); }),
      one("p=3 transposed dim 0", away_from_zero64({4, 3}, -2, 2, 0.1, 213), Tensor(), true,
          [](const Tensor& x) { return norm(transpose(x, 0, 1), 3.0, {0}); }),
      one("p=1.5 all", away_from_zero64({3, 4}, -2, 2, 0.1, 214), Tensor(), true,
          [](const Tensor& x) { return norm(x, 1.5); }),
      one("p=inf dim 1", uniform64({3, 4}, 0.5, 3, 215), Tensor(), true,
          [](const Tensor& x) { return norm(x, std::numeric_limits<double>::infinity(), {1}); }),
  };
}));

// The two helper ops behind max/min's gradient.
CVG_REGISTER_OP(spec_of("index_get_along_dim", [] {
  const Tensor idx = from_vector<int64_t>({2, 0}, {2, 1}, TensorOptions{}.with_dtype(DType::int64));
  const Tensor idx3 = from_vector<int64_t>({1, 0, 2, 2, 1, 0, 0, 1}, {2, 1, 4},
                                           TensorOptions{}.with_dtype(DType::int64));
  return std::vector<OpSample>{
      one("dim 1", m23(), c({3, 4}, {2, 1}), true,
          [idx](const Tensor& x) { return index_get_along_dim(x, idx.to(x.device()), 1); }),
      one("3-d dim 1", uniform64({2, 3, 4}, -1, 1, 221), Tensor(), true,
          [idx3](const Tensor& x) { return index_get_along_dim(x, idx3.to(x.device()), -2); }),
  };
}));

CVG_REGISTER_OP(spec_of("index_put_along_dim", [] {
  const Tensor idx = from_vector<int64_t>({2, 0}, {2, 1}, TensorOptions{}.with_dtype(DType::int64));
  const Tensor idx3 = from_vector<int64_t>({1, 0, 2, 2, 1, 0, 0, 1}, {2, 1, 4},
                                           TensorOptions{}.with_dtype(DType::int64));
  return std::vector<OpSample>{
      one("dim 1", t64({7, 8}, {2, 1}), c({0, 0, 7, 8, 0, 0}, {2, 3}), true,
          [idx](const Tensor& x) { return index_put_along_dim(x, idx.to(x.device()), 1, 3); }),
      one("3-d dim 1", uniform64({2, 1, 4}, -1, 1, 231), Tensor(), true,
          [idx3](const Tensor& x) { return index_put_along_dim(x, idx3.to(x.device()), 1, 3); }),
  };
}));

// ---------------------------------------------------------------------------------------------
// Hand tests beyond the registry.

TEST_CASE("max/min: gradient goes to the first maximum only; amax splits ties", "[reduce]") {
  Tensor x = t64({3, 1, 3, 2}, {4});
  max(x, 0).values.backward();
  CHECK(allclose(x.grad(), c({1, 0, 0, 0}, {4}), 0, 0));

  Tensor y = t64({3, 1, 3, 2}, {4});
  amax(y).backward();
  CHECK(allclose(y.grad(), c({0.5, 0, 0.5, 0}, {4}), 0, 0));

  Tensor z = t64({2, 1, 1, 5, 5, 5}, {2, 3});
  sum(amin(z, {1}) * c({1, 10}, {2})).backward();
  CHECK(allclose(z.grad(), c({0, 0.5, 0.5, 10.0 / 3, 10.0 / 3, 10.0 / 3}, {2, 3}), 1e-15, 0));
}

TEST_CASE("max/min over a dim: values and indices agree with a scan", "[reduce]") {
  const Tensor x = distinct64({4, 6, 5}, 0.25, 7, false);
  const std::vector<double> v = x.to_vector<double>();
  auto [values, indices] = max(x, 1);
  REQUIRE(indices.dtype() == DType::int64);
  REQUIRE(indices.shape() == Shape{4, 5});
  const std::vector<int64_t> iv = indices.to_vector<int64_t>();
  const std::vector<double> vv = values.to_vector<double>();
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 5; ++b) {
      int best = 0;
      for (int k = 1; k < 6; ++k)
        if (v[(a * 6 + k) * 5 + b] > v[(a * 6 + best) * 5 + b]) best = k;
      CHECK(iv[a * 5 + b] == best);
      CHECK(vv[a * 5 + b] == v[(a * 6 + best) * 5 + b]);
    }
  auto mn = min(x, -1, /*keepdim=*/true);
  CHECK(mn.indices.shape() == Shape{4, 6, 1});
  CHECK(allclose(mn.values, amin(x, {-1}, true), 0, 0));
}

TEST_CASE("long rows use the blocked path and agree with a sequential scan", "[reduce]") {
  // 100003 elements: several 16384-element blocks, so the CPU combines block partials.
  const int64_t n = 100003;
  const Tensor x = uniform64({n}, -3, 3, 77, false);
  const std::vector<double> v = x.to_vector<double>();
  double s = 0, mx = -kInf, sq = 0, lse_m = -kInf;
  int64_t arg = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += v[i];
    if (v[i] > mx) { mx = v[i]; arg = i; }
    sq += v[i] * v[i];
  }
  lse_m = mx;
  double lse_s = 0, dev = 0;
  const double m = s / n;
  for (int64_t i = 0; i < n; ++i) {
    lse_s += std::exp(v[i] - lse_m);
    dev += (v[i] - m) * (v[i] - m);
  }
  CHECK(std::fabs(sum(x).item() - s) < 1e-9);
  CHECK(amax(x).item() == mx);
  CHECK(argmax(x).item<int64_t>() == arg);
  CHECK(std::fabs(var(x).item() - dev / (n - 1)) < 1e-12);
  CHECK(std::fabs(norm(x).item() - std::sqrt(sq)) < 1e-9);
  CHECK(std::fabs(logsumexp(x).item() - (lse_m + std::log(lse_s))) < 1e-12);
  // The same rows, several at once (the row-parallel path), give the same bits.
  const Tensor two = expand(reshape(x, {1, n}), {2, n});
  const Tensor s2 = sum(two, {1});
  CHECK(s2.to_vector<double>()[0] == sum(x).item());
  CHECK(s2.to_vector<double>()[1] == sum(x).item());
  CHECK(var(two, {1}).to_vector<double>()[0] == var(x).item());
}

TEST_CASE("norm: no overflow or underflow, and zero gradient at zero", "[reduce]") {
  CHECK(norm(c({3e200, 4e200}, {2})).item() == Approx(5e200).epsilon(1e-14));
  CHECK(norm(c({3e-200, 4e-200}, {2})).item() == Approx(5e-200).epsilon(1e-14));
  CHECK(norm(c({3e-200, 4e-200}, {2}), 1.0).item() == Approx(7e-200).epsilon(1e-14));
  CHECK(norm(c({3e30f, 4e30f}, {2}).to(DType::float32)).item() == Approx(5e30).epsilon(1e-6));
  CHECK(norm(c({0, 0, 0}, {3})).item() == 0.0);

  Tensor z = t64({0, 0, 0}, {3});
  const Tensor g = grad({norm(z)}, {z}, {}, {.create_graph = true})[0];
  CHECK(allclose(g, c({0, 0, 0}, {3}), 0, 0));
  // The second derivative at zero is finite too (no 0/0 in the graph).
  const Tensor gg = grad({sum(g)}, {z}, {}, {.allow_unused = true})[0];
  if (gg.defined()) {
    for (double v : gg.to_vector<double>()) CHECK(std::isfinite(v));
  }
}

TEST_CASE("logsumexp gradient is the softmax", "[reduce]") {
  Tensor x = t64({1000, 1000 + std::log(3.0)}, {2});
  logsumexp(x).backward();
  CHECK(allclose(x.grad(), c({0.25, 0.75}, {2}), 1e-12, 1e-12));
}

TEST_CASE("var/std_dev on float32 match float64", "[reduce]") {
  const Tensor x = uniform64({5, 7}, -2, 2, 9, false);
  CHECK(allclose(var(x.to(DType::float32), {1}), var(x, {1}), 1e-5, 1e-6));
  CHECK(allclose(std_dev(x.to(DType::float32), {0}, false), std_dev(x, {0}, false), 1e-5, 1e-6));
}

TEST_CASE("reduction errors name the op", "[reduce][errors]") {
  const Tensor x = m23(false);
  const Tensor xi = from_vector<int32_t>({1, 2, 3}, {3}, TensorOptions{}.with_dtype(DType::int32));
  const Tensor empty = zeros({0, 3}, TensorOptions{}.with_dtype(DType::float64));
  using Catch::Contains;
  CHECK_THAT(error_of([&] { sum(x, {2}); }), Contains("sum: dim 2 is out of range"));
  CHECK_THAT(error_of([&] { sum(x, {1, -1}); }), Contains("sum: dim repeats"));
  CHECK_THAT(error_of([&] { sum(xi); }), Contains("sum: expected a floating-point tensor, got int32"));
  CHECK_THAT(error_of([&] { mean(x, {-3}); }), Contains("mean: dim -3 is out of range"));
  CHECK_THAT(error_of([&] { var(xi); }), Contains("var: expected a floating-point tensor"));
  CHECK_THAT(error_of([&] { var(x, {0, 0}); }), Contains("var: dim repeats"));
  CHECK_THAT(error_of([&] { std_dev(x, {5}); }), Contains("std_dev"));
  CHECK_THAT(error_of([&] { amax(x, {0, 0}); }), Contains("amax: dim repeats"));
  CHECK_THAT(error_of([&] { amin(xi); }), Contains("amin: expected a floating-point tensor"));
  CHECK_THAT(error_of([&] { amax(empty, {0}); }), Contains("amax: cannot reduce over an empty dim"));
  CHECK_THAT(error_of([&] { max(x, 2); }), Contains("max: dim 2 is out of range"));
  CHECK_THAT(error_of([&] { min(xi, 0); }), Contains("min: expected a floating-point tensor"));
  CHECK_THAT(error_of([&] { max(empty, 0); }), Contains("max: cannot reduce over dim 0 of size 0"));
  CHECK_THAT(error_of([&] { argmax(xi, 0); }), Contains("argmax: expected a floating-point tensor"));
  CHECK_THAT(error_of([&] { argmin(x, -3); }), Contains("argmin: dim -3 is out of range"));
  CHECK_THAT(error_of([&] { argmax(empty); }), Contains("argmax: cannot reduce"));
  CHECK_THAT(error_of([&] { logsumexp(x, {1, 1}); }), Contains("logsumexp: dim repeats"));
  CHECK_THAT(error_of([&] { logsumexp(xi); }), Contains("logsumexp: expected a floating-point"));
  CHECK_THAT(error_of([&] { norm(x, -1.0); }), Contains("norm: p must be positive"));
  CHECK_THAT(error_of([&] { norm(x, 0.0); }), Contains("norm: p must be positive"));
  CHECK_THAT(error_of([&] { norm(xi); }), Contains("norm: expected a floating-point"));
  CHECK_THAT(error_of([&] { norm(x, 2.0, {3}); }), Contains("norm: dim 3 is out of range"));

  const Tensor idx = from_vector<int64_t>({3, 0}, {2, 1}, TensorOptions{}.with_dtype(DType::int64));
  CHECK_THAT(error_of([&] { index_get_along_dim(x, idx, 1); }),
             Contains("index_get_along_dim: index 3 is out of range for a dim of size 3"));
  CHECK_THAT(error_of([&] { index_put_along_dim(c({1, 2}, {2, 1}), idx, 1, 2); }),
             Contains("index_put_along_dim: index 3 is out of range"));
  CHECK_THAT(error_of([&] { index_get_along_dim(x, idx.to(DType::int32), 1); }),
             Contains("index_get_along_dim: index must be int64, got int32"));
  CHECK_THAT(error_of([&] { index_get_along_dim(x, idx, 0); }),
             Contains("index_get_along_dim: index must have size 1 at dim 0"));
}

// sum's CPU fold keeps 32 double partials per 16384-element block: row lengths around the lane
// count and the block size (tails of every length, one block plus a few elements), against a
// sequential long-double sum. Positive entries: no cancellation, so the float64 result is
// within a few ulp and the float32 result is the double sum rounded once.
TEST_CASE("sum over rows: the lane fold agrees with a sequential sum at odd lengths", "[reduce]") {
  for (int64_t n : {1, 2, 15, 16, 17, 31, 32, 33, 63, 65, 1000, 16384, 16385, 16384 + 37, 3 * 16384 + 5})
    for (DType dt : {DType::float32, DType::float64}) {
      const int64_t rows = n > 2000 ? 2 : 5;
      const Tensor x = uniform64({rows, n}, 0.5, 2, 960 + n, false).to(dt);
      const std::vector<double> v = x.to_vector<double>();
      const std::vector<double> got = sum(x, {1}).to_vector<double>();
      const std::vector<double> got_mean = mean(x, {1}).to_vector<double>();
      for (int64_t r = 0; r < rows; ++r) {
        long double s = 0;
        for (int64_t i = 0; i < n; ++i) s += v[r * n + i];
        INFO(dtype_name(dt) << " n " << n << " row " << r);
        const double want = static_cast<double>(s);
        if (dt == DType::float32) {
          CHECK(got[r] == Approx(static_cast<float>(want)).epsilon(2e-7));
          CHECK(got_mean[r] == Approx(want / n).epsilon(3e-7));
        } else {
          CHECK(got[r] == Approx(want).epsilon(1e-14));
          CHECK(got_mean[r] == Approx(want / n).epsilon(1e-14));
        }
      }
    }
}

#ifdef _OPENMP
TEST_CASE("sum over rows: the result does not depend on the thread count", "[reduce]") {
  // Many short rows (rows split across threads) and one long row (blocks split across threads).
  const Tensor many = randn({301, 1001}), one_row = randn({5 * 16384 + 11});
  auto run = [&] {
    std::vector<double> v = sum(many, {1}).to_vector<double>();
    v.push_back(sum(one_row).item());
    v.push_back(mean(one_row).item());
    return v;
  };
  const auto [one, three] = at_one_and_three_threads(run);
  CHECK(one == three);
}
#endif

TEST_CASE("reduce_split: the GPU's cut of long rows covers each row once, in full chunks",
          "[reduce]") {
  // The cut itself (kernels/reduce_math.h); the kernels that use it are checked against the
  // CPU in tests/test_reduce_cuda.cpp.
  for (const int64_t outer : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{100}, int64_t{1023},
                              int64_t{1024}, int64_t{5000}}) {
    for (const int64_t inner : {int64_t{1}, int64_t{4096}, int64_t{4097}, int64_t{8192},
                                int64_t{65536}, int64_t{100003}, int64_t{26542080},
                                int64_t{1} << 33}) {
      INFO(outer << " rows of " << inner);
      const ReduceSplit s = reduce_split(outer, inner);
      REQUIRE(s.parts >= 1);
      CHECK(s.parts <= 1024);
      CHECK(s.chunk * s.parts >= inner);          // every element in a chunk
      CHECK(s.chunk * (s.parts - 1) < inner);      // no empty chunk
      if (s.parts > 1) {
        CHECK(s.chunk >= 2048);                    // worth a block (>= 4096 before rounding)
        CHECK(outer * s.parts < 1024 + outer);     // no more blocks than needed to fill a GPU
      } else {
        CHECK(s.chunk == inner);
      }
    }
  }
  // A full sum of the Deep Matching scores (one row of 26.5 M) is cut into 1024 chunks; the
  // benchmark's 256 rows of 65536 into 4 each; short or many rows are not cut.
  CHECK(reduce_split(1, 26542080).parts == 1024);
  CHECK(reduce_split(256, 65536).parts == 4);
  CHECK(reduce_split(4096, 4096).parts == 1);
  CHECK(reduce_split(2000, 1 << 20).parts == 1);
  CHECK(reduce_split(1, 4096).parts == 1);
}
