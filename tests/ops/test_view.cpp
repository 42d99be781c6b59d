// Registry entries and hand tests for the view ops (kernels/view.h) and for Tensor::contiguous,
// clone and to(DType). Views are linear maps, so every sample is gradchecked (their gradients
// are views, sum_to and slice_backward); hand cases use 1..n so element moves are visible.
#include <catch2/catch.hpp>

#include <functional>
#include <numeric>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

using Unary = std::function<Tensor(const Tensor&)>;

OpSample one(const std::string& label, Tensor x, Tensor expected, Unary f,
             bool gradcheck = true) {
  return OpSample{label, {std::move(x)}, std::move(expected), gradcheck,
                  [f](const TensorList& xs) { return f(xs[0]); }};
}

OpSpec spec_of(const std::string& name, std::function<std::vector<OpSample>()> samples) {
  OpSpec spec;
  spec.name = name;
  spec.fn = [name](const TensorList&) -> Tensor {
    fail("test_view: ", name, " samples carry their own function");
  };
  spec.samples = std::move(samples);
  return spec;
}

// 1, 2, ..., numel(shape) in row-major order (requires grad).
Tensor iota64(const Shape& shape) {
  std::vector<double> v(numel_of(shape));
  std::iota(v.begin(), v.end(), 1.0);
  return t64(v, shape);
}
Tensor c(const std::vector<double>& v, const Shape& s) { return t64(v, s, false); }

}  // namespace

CVG_REGISTER_OP(spec_of("reshape", [] {
  return std::vector<OpSample>{
      one("2x3 -> 3x2", iota64({2, 3}), c({1, 2, 3, 4, 5, 6}, {3, 2}),
          [](const Tensor& x) { return reshape(x, {3, 2}); }),
      one("-1 inferred", iota64({2, 3}), c({1, 2, 3, 4, 5, 6}, {2, 1, 3}),
          [](const Tensor& x) { return reshape(x, {2, -1, 3}); }),
      // The transpose [[1, 4], [2, 5], [3, 6]] read in row-major order.
      one("non-contiguous input", iota64({2, 3}), c({1, 4, 2, 5, 3, 6}, {6}),
          [](const Tensor& x) { return reshape(transpose(x, 0, 1), {-1}); }),
      one("0-d -> [1, 1]", t64({7}, {}), c({7}, {1, 1}), [](const Tensor& x) { return reshape(x, {1, 1}); }),
      one("empty", t64({}, {0, 3}), c({}, {3, 0}), [](const Tensor& x) { return reshape(x, {3, -1}); }),
      one("random 3x4x5 -> 20x3", uniform64({3, 4, 5}, -1, 1, 301), Tensor(),
          [](const Tensor& x) { return reshape(x, {20, 3}); }),
  };
}));

CVG_REGISTER_OP(spec_of("flatten", [] {
  return std::vector<OpSample>{
      one("all", iota64({2, 2}), c({1, 2, 3, 4}, {4}), [](const Tensor& x) { return flatten(x); }),
      one("from dim 1", iota64({2, 2, 2}), c({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}),
          [](const Tensor& x) { return flatten(x, 1); }),
      one("dims 0..1", iota64({2, 2, 2}), c({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2}),
          [](const Tensor& x) { return flatten(x, 0, -2); }),
      one("0-d", t64({3}, {}), c({3}, {1}), [](const Tensor& x) { return flatten(x); }),
      one("transposed", uniform64({3, 4, 2}, -1, 1, 311), Tensor(),
          [](const Tensor& x) { return flatten(transpose(x, 0, 2), 1); }),
  };
}));

CVG_REGISTER_OP(spec_of("permute", [] {
  // iota64({2, 3, 2}) is x[i][j][k] = 6i + 2j + k + 1; permute {2, 0, 1} gives y[k][i][j].
  return std::vector<OpSample>{
      one("2-d swap", iota64({2, 3}), c({1, 4, 2, 5, 3, 6}, {3, 2}),
          [](const Tensor& x) { return permute(x, {1, 0}); }),
      one("3-d {2, 0, 1}", iota64({2, 3, 2}), c({1, 3, 5, 7, 9, 11, 2, 4, 6, 8, 10, 12}, {2, 2, 3}),
          [](const Tensor& x) { return permute(x, {2, 0, 1}); }),
      one("negative dims", uniform64({2, 3, 4}, -1, 1, 321), Tensor(),
          [](const Tensor& x) { return permute(x, {-1, -3, -2}); }),
      one("0-d", t64({5}, {}), c({5}, {}), [](const Tensor& x) { return permute(x, {}); }),
  };
}));

CVG_REGISTER_OP(spec_of("transpose", [] {
  return std::vector<OpSample>{
      one("2-d", iota64({2, 3}), c({1, 4, 2, 5, 3, 6}, {3, 2}),
          [](const Tensor& x) { return transpose(x, 0, 1); }),
      one("3-d dims 0, -1", iota64({2, 1, 2}), c({1, 3, 2, 4}, {2, 1, 2}),
          [](const Tensor& x) { return transpose(x, 0, -1); }),
      one("same dim", iota64({2, 2}), c({1, 2, 3, 4}, {2, 2}),
          [](const Tensor& x) { return transpose(x, 1, 1); }),
      one("0-d", t64({5}, {}), c({5}, {}), [](const Tensor& x) { return transpose(x, 0, -1); }),
      one("random then matmul-like use", uniform64({3, 4, 5}, -1, 1, 331), Tensor(),
          [](const Tensor& x) { return transpose(x, 1, 2) * 2.0; }),
  };
}));

CVG_REGISTER_OP(spec_of("unsqueeze", [] {
  return std::vector<OpSample>{
      one("dim 1", iota64({2, 3}), c({1, 2, 3, 4, 5, 6}, {2, 1, 3}),
          [](const Tensor& x) { return unsqueeze(x, 1); }),
      one("dim -1", iota64({2, 3}), c({1, 2, 3, 4, 5, 6}, {2, 3, 1}),
          [](const Tensor& x) { return unsqueeze(x, -1); }),
      one("0-d", t64({4}, {}), c({4}, {1}), [](const Tensor& x) { return unsqueeze(x, 0); }),
      one("transposed input", iota64({2, 3}), c({1, 4, 2, 5, 3, 6}, {1, 3, 2}),
          [](const Tensor& x) { return unsqueeze(transpose(x, 0, 1), 0); }),
  };
}));

CVG_REGISTER_OP(spec_of("squeeze", [] {
  return std::vector<OpSample>{
      one("one dim", iota64({2, 1, 3}), c({1, 2, 3, 4, 5, 6}, {2, 3}),
          [](const Tensor& x) { return squeeze(x, 1); }),
      one("negative dim", iota64({2, 3, 1}), c({1, 2, 3, 4, 5, 6}, {2, 3}),
          [](const Tensor& x) { return squeeze(x, -1); }),
      one("all size-1 dims", iota64({1, 2, 1, 3, 1}), c({1, 2, 3, 4, 5, 6}, {2, 3}),
          [](const Tensor& x) { return squeeze(x); }),
      one("all ones -> 0-d", t64({9}, {1, 1}), c({9}, {}), [](const Tensor& x) { return squeeze(x); }),
      one("transposed input", iota64({3, 1, 2}), c({1, 3, 5, 2, 4, 6}, {2, 3}),
          [](const Tensor& x) { return squeeze(transpose(x, 0, 2)); }),
  };
}));

CVG_REGISTER_OP(spec_of("expand", [] {
  return std::vector<OpSample>{
      one("column", t64({1, 2, 3}, {3, 1}), c({1, 1, 1, 2, 2, 2, 3, 3, 3}, {3, 3}),
          [](const Tensor& x) { return expand(x, {3, 3}); }),
      one("new leading dims", t64({1, 2}, {2}), c({1, 2, 1, 2, 1, 2, 1, 2}, {2, 2, 2}),
          [](const Tensor& x) { return expand(x, {2, 2, 2}); }),
      one("-1 keeps a size", t64({1, 2}, {1, 2}), c({1, 2, 1, 2, 1, 2}, {3, 2}),
          [](const Tensor& x) { return expand(x, {3, -1}); }),
      one("0-d", t64({5}, {}), c({5, 5}, {2}), [](const Tensor& x) { return expand(x, {2}); }),
      one("random 3x1x4 -> 2x3x5x4", uniform64({3, 1, 4}, -1, 1, 341), Tensor(),
          [](const Tensor& x) { return expand(x, {2, -1, 5, 4}); }),
  };
}));

CVG_REGISTER_OP(spec_of("slice", [] {
  return std::vector<OpSample>{
      one("negative start", iota64({6}), c({4, 5, 6}, {3}), [](const Tensor& x) { return slice(x, 0, -3, 6); }),
      one("step 2", iota64({6}), c({2, 4, 6}, {3}), [](const Tensor& x) { return slice(x, 0, 1, 6, 2); }),
      one("clamped end", iota64({6}), c({5, 6}, {2}), [](const Tensor& x) { return slice(x, 0, 4, 100); }),
      one("clamped negative start", iota64({4}), c({1, 2}, {2}),
          [](const Tensor& x) { return slice(x, 0, -100, -2); }),
      one("empty (start >= end)", iota64({4}), c({}, {0}), [](const Tensor& x) { return slice(x, 0, 3, 1); }),
      one("dim 1 step 2", iota64({2, 5}), c({1, 3, 5, 6, 8, 10}, {2, 3}),
          [](const Tensor& x) { return slice(x, 1, 0, 5, 2); }),
      one("slice of a slice, step 3", uniform64({4, 10}, -1, 1, 351), Tensor(),
          [](const Tensor& x) { return slice(slice(x, -1, 1, 10, 3), 0, 1, 3); }),
  };
}));

CVG_REGISTER_OP(spec_of("narrow", [] {
  return std::vector<OpSample>{
      one("dim 1", iota64({2, 4}), c({2, 3, 6, 7}, {2, 2}), [](const Tensor& x) { return narrow(x, 1, 1, 2); }),
      one("dim -2 length 0", iota64({3, 2}), c({}, {0, 2}), [](const Tensor& x) { return narrow(x, -2, 3, 0); }),
      one("random", uniform64({5, 3}, -1, 1, 361), Tensor(), [](const Tensor& x) { return narrow(x, 0, 2, 3); }),
  };
}));

CVG_REGISTER_OP(spec_of("select", [] {
  return std::vector<OpSample>{
      one("row", iota64({2, 3}), c({4, 5, 6}, {3}), [](const Tensor& x) { return select(x, 0, 1); }),
      one("negative index", iota64({2, 3}), c({3, 6}, {2}), [](const Tensor& x) { return select(x, 1, -1); }),
      one("to 0-d", iota64({3}), c({2}, {}), [](const Tensor& x) { return select(x, 0, 1); }),
      one("random 3-d", uniform64({3, 4, 2}, -1, 1, 371), Tensor(),
          [](const Tensor& x) { return select(transpose(x, 0, 1), 2, 0); }),
  };
}));

CVG_REGISTER_OP(spec_of("contiguous", [] {
  return std::vector<OpSample>{
      one("transposed", iota64({2, 3}), c({1, 4, 2, 5, 3, 6}, {3, 2}),
          [](const Tensor& x) { return transpose(x, 0, 1).contiguous(); }),
      one("already contiguous", iota64({2, 2}), c({1, 2, 3, 4}, {2, 2}),
          [](const Tensor& x) { return x.contiguous(); }),
      one("expanded", t64({1, 2}, {2}), c({1, 2, 1, 2}, {2, 2}),
          [](const Tensor& x) { return expand(x, {2, 2}).contiguous(); }),
  };
}));

CVG_REGISTER_OP(spec_of("clone", [] {
  return std::vector<OpSample>{
      one("matrix", iota64({2, 2}), c({1, 2, 3, 4}, {2, 2}), [](const Tensor& x) { return x.clone(); }),
      one("strided", iota64({2, 3}), c({1, 3, 4, 6}, {2, 2}),
          [](const Tensor& x) { return slice(x, 1, 0, 3, 2).clone(); }),
  };
}));

CVG_REGISTER_OP(spec_of("to_dtype", [] {
  // A float32 round trip keeps values exactly representable in float32 (0.5, 0.25, -3). Only
  // the random sample is gradchecked: it sits in [1e-3, 2e-3), where float32's spacing
  // (~1e-10) is far below the gradcheck step, so central differences through the rounding stay
  // accurate (at 0.5 the rounding error would be a few percent of the difference).
  const Unary round_trip = [](const Tensor& x) { return x.to(DType::float32).to(DType::float64); };
  return std::vector<OpSample>{
      one("float32 round trip", t64({0.5, 0.25, -3}, {3}), c({0.5, 0.25, -3}, {3}), round_trip, false),
      one("rounds to float32", t64({0.1}, {1}), c({static_cast<double>(0.1f)}, {1}), round_trip,
          false),
      one("random small", uniform64({3, 4}, 1e-3, 2e-3, 381), Tensor(), round_trip),
  };
}));

// ---------------------------------------------------------------------------------------------

TEST_CASE("views share storage with their base", "[view]") {
  const Tensor base = arange(0, 12, 1, TensorOptions{}.with_dtype(DType::float64));
  const Tensor m = reshape(base, {3, 4});  // contiguous input: a view
  CHECK(m.storage() == base.storage());

  // Writing through a view shows up in the base and in other views.
  slice(m, 1, 1, 4, 2).fill_(-1);  // columns 1 and 3
  CHECK(base.to_vector<double>() ==
        std::vector<double>{0, -1, 2, -1, 4, -1, 6, -1, 8, -1, 10, -1});
  select(m, 0, 2).fill_(7);  // last row
  CHECK(base.to_vector<double>()[8] == 7);
  CHECK(base.to_vector<double>()[11] == 7);

  const Tensor t = transpose(m, 0, 1);
  CHECK(t.storage() == base.storage());
  narrow(t, 0, 0, 1).fill_(100);  // column 0 of m
  CHECK(m.to_vector<double>()[0] == 100);
  CHECK(m.to_vector<double>()[4] == 100);

  // unsqueeze and squeeze stay views even of a non-contiguous tensor.
  const Tensor u = unsqueeze(t, 1);
  CHECK(u.storage() == base.storage());
  select(select(u, 0, 2), 0, 0).fill_(-5);  // t[2][0] = m[0][2]
  CHECK(m.to_vector<double>()[2] == -5);
  const Tensor s = squeeze(u, 1);
  CHECK(s.storage() == base.storage());
  CHECK(squeeze(u).storage() == base.storage());

  const Tensor p = permute(reshape(base, {2, 3, 2}), {2, 0, 1});
  CHECK(p.storage() == base.storage());
  CHECK(flatten(m).storage() == base.storage());

  // expand reads the same storage through stride 0: one write is seen in every copy.
  const Tensor row = reshape(slice(base, 0, 0, 4), {1, 4});
  const Tensor e = expand(row, {3, 4});
  CHECK(e.storage() == base.storage());
  CHECK(e.strides()[0] == 0);
  slice(base, 0, 0, 1).fill_(42);
  CHECK(e.to_vector<double>()[0] == 42);
  CHECK(e.to_vector<double>()[8] == 42);
}

TEST_CASE("contiguous, clone, reshape and to(DType) copy only when they must", "[view]") {
  const Tensor x = arange(0, 6, 1, TensorOptions{}.with_dtype(DType::float64));
  const Tensor m = reshape(x, {2, 3});
  CHECK(m.contiguous().impl() == m.impl());  // already contiguous: the same handle
  CHECK(m.to(DType::float64).impl() == m.impl());

  const Tensor t = transpose(m, 0, 1);
  CHECK_FALSE(t.is_contiguous());
  const Tensor tc = t.contiguous();
  CHECK(tc.is_contiguous());
  CHECK(tc.storage() != x.storage());
  CHECK(tc.to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5});
  // reshape of a non-contiguous tensor goes through a contiguous copy (kernels/view.h).
  CHECK(reshape(t, {6}).storage() != x.storage());

  Tensor cl = m.clone();
  CHECK(cl.storage() != x.storage());
  cl.fill_(9);
  CHECK(x.to_vector<double>() == std::vector<double>{0, 1, 2, 3, 4, 5});

  // Float to integer conversion truncates toward zero, as static_cast (and PyTorch) does.
  const Tensor i = c({1.5, -2.5, 3.9}, {3}).to(DType::int32);
  CHECK(i.dtype() == DType::int32);
  CHECK(i.to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3});
  CHECK_FALSE(t64({1.5}, {1}).to(DType::int64).requires_grad());
}

TEST_CASE("to(DType) passes the gradient back in the source dtype", "[view]") {
  Tensor x = t64({0.5, -2}, {2});
  const Tensor y = x.to(DType::float32);
  sum(y * c({3, 4}, {2}).to(DType::float32)).backward();
  REQUIRE(x.grad().dtype() == DType::float64);
  CHECK(allclose(x.grad(), c({3, 4}, {2}), 0, 0));
}

TEST_CASE("view errors name the op", "[view][errors]") {
  const Tensor x = zeros({2, 3}, TensorOptions{}.with_dtype(DType::float64));
  const Tensor s = zeros({}, TensorOptions{}.with_dtype(DType::float64));
  using Catch::Contains;
  CHECK_THAT(error_of([&] { reshape(x, {4}); }),
             Contains("reshape: cannot reshape [2, 3] (6 elements) to [4]"));
  CHECK_THAT(error_of([&] { reshape(x, {-1, -1}); }), Contains("reshape: only one dimension can be -1"));
  CHECK_THAT(error_of([&] { reshape(x, {4, -1}); }), Contains("reshape: cannot reshape [2, 3]"));
  CHECK_THAT(error_of([&] { flatten(x, 1, 0); }), Contains("flatten: start_dim 1 comes after end_dim 0"));
  CHECK_THAT(error_of([&] { permute(x, {0, 0}); }), Contains("permute: dim 0 repeats in [0, 0]"));
  CHECK_THAT(error_of([&] { permute(x, {0, -2}); }), Contains("permute: dim -2 repeats"));
  CHECK_THAT(error_of([&] { permute(x, {0}); }), Contains("permute: got 1 dims for a 2-d tensor"));
  CHECK_THAT(error_of([&] { transpose(x, 0, 2); }), Contains("transpose: dim 2 is out of range"));
  CHECK_THAT(error_of([&] { unsqueeze(x, 4); }), Contains("unsqueeze: dim 4 is out of range"));
  CHECK_THAT(error_of([&] { squeeze(x, 1); }), Contains("squeeze: dim 1 has size 3, not 1"));
  CHECK_THAT(error_of([&] { expand(x, {2, 4}); }), Contains("expand: cannot broadcast shape [2, 3] to [2, 4]"));
  CHECK_THAT(error_of([&] { expand(x, {3}); }), Contains("expand: cannot expand shape [2, 3] to fewer dims"));
  CHECK_THAT(error_of([&] { expand(x, {-1, 2, 3}); }), Contains("expand: -1 is not allowed for the new leading dim 0"));
  CHECK_THAT(error_of([&] { slice(x, 1, 0, 3, 0); }), Contains("slice: step must be positive, got 0"));
  CHECK_THAT(error_of([&] { slice(x, 2, 0, 1); }), Contains("slice: dim 2 is out of range"));
  CHECK_THAT(error_of([&] { slice(s, 0, 0, 1); }), Contains("slice: cannot slice a 0-d tensor"));
  CHECK_THAT(error_of([&] { narrow(x, 1, 2, 2); }), Contains("narrow: range [2, 4) is outside dim 1 of size 3"));
  CHECK_THAT(error_of([&] { narrow(s, 0, 0, 1); }), Contains("narrow: cannot narrow a 0-d tensor"));
  CHECK_THAT(error_of([&] { select(x, 0, 2); }), Contains("select: index 2 is out of range for dim 0 of size 2"));
  CHECK_THAT(error_of([&] { select(x, 1, -4); }), Contains("select: index -4 is out of range"));
  CHECK_THAT(error_of([&] { select(s, 0, 0); }), Contains("select: cannot select from a 0-d tensor"));
}
