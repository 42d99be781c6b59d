// Tests of the copying shape ops (kernels/shape.h): registry entries with hand-computed cases
// and gradcheck samples (negative dims, empty tensors, strided inputs), and plain test cases
// for dtype promotion, views and error messages.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/shape.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

// Weights each piece differently before joining them again, so that a gradient routed to the
// wrong piece shows up in gradcheck.
Tensor weighted_cat(const TensorList& pieces, int64_t dim) {
  TensorList scaled;
  for (size_t k = 0; k < pieces.size(); ++k) scaled.push_back(pieces[k] * (1.0 + k));
  return cat(scaled, dim);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// cat / stack / split / chunk

CVG_REGISTER_OP(OpSpec{
    "cat",
    [](const TensorList& xs) { return cat(xs, 0); },
    [] {
      return std::vector<OpSample>{
          {"hand dim 0", {t64({1, 2, 3, 4}, {2, 2}), t64({5, 6}, {1, 2})},
           t64({1, 2, 3, 4, 5, 6}, {3, 2}, false), true, nullptr},
          {"hand dim -1", {t64({1, 2, 3, 4}, {2, 2}), t64({5, 6}, {2, 1})},
           t64({1, 2, 5, 3, 4, 6}, {2, 3}, false), true,
           [](const TensorList& xs) { return cat(xs, -1); }},
          {"three inputs, middle dim of 3-d",
           {uniform64({2, 1, 3}, -1, 1, 1), uniform64({2, 4, 3}, -1, 1, 2),
            uniform64({2, 2, 3}, -1, 1, 3)},
           Tensor(), true, [](const TensorList& xs) { return cat(xs, 1); }},
          {"empty piece along dim", {uniform64({2, 3}, -1, 1, 4), uniform64({0, 3}, -1, 1, 5),
                                     uniform64({1, 3}, -1, 1, 6)},
           Tensor(), true, nullptr},
          {"all empty", {uniform64({0, 2}, -1, 1, 7), uniform64({0, 2}, -1, 1, 8)}, Tensor(),
           true, nullptr},
          {"transposed input", {uniform64({3, 2}, -1, 1, 9), uniform64({4, 3}, -1, 1, 10)},
           Tensor(), true,
           [](const TensorList& xs) { return cat({transpose(xs[0], 0, 1), xs[1]}, 0); }},
          {"one differentiable input", {uniform64({2, 2}, -1, 1, 11),
                                        uniform64({2, 2}, -1, 1, 12, /*grad=*/false)},
           Tensor(), true, [](const TensorList& xs) { return cat(xs, 1); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "stack",
    [](const TensorList& xs) { return stack(xs, 1); },
    [] {
      return std::vector<OpSample>{
          {"hand dim 1", {t64({1, 2}, {2}), t64({3, 4}, {2})}, t64({1, 3, 2, 4}, {2, 2}, false),
           true, nullptr},
          {"hand dim 0", {t64({1, 2}, {2}), t64({3, 4}, {2})}, t64({1, 2, 3, 4}, {2, 2}, false),
           true, [](const TensorList& xs) { return stack(xs, 0); }},
          {"new last dim (-1) of 2-d", {uniform64({2, 3}, -1, 1, 21), uniform64({2, 3}, -1, 1, 22),
                                        uniform64({2, 3}, -1, 1, 23)},
           Tensor(), true, [](const TensorList& xs) { return stack(xs, -1); }},
          {"scalars", {uniform64({}, -1, 1, 24), uniform64({}, -1, 1, 25)}, Tensor(), true,
           [](const TensorList& xs) { return stack(xs, 0); }},
          {"empty", {uniform64({0, 2}, -1, 1, 26), uniform64({0, 2}, -1, 1, 27)}, Tensor(), true,
           nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "split",
    // Pieces of 2 along dim 1 (the last one smaller), each weighted and joined again.
    [](const TensorList& xs) { return weighted_cat(split(xs[0], 2, 1), 1); },
    [] {
      return std::vector<OpSample>{
          // x = [[1..5], [6..10]]: pieces [1,2|3,4|5] weighted 1, 2, 3.
          {"hand size 2 of 5", {t64({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {2, 5})},
           t64({1, 2, 6, 8, 15, 6, 7, 16, 18, 30}, {2, 5}, false), true, nullptr},
          {"hand sizes {1, 0, 2} dim 0", {t64({1, 2, 3}, {3})}, t64({1, 6, 9}, {3}, false), true,
           [](const TensorList& xs) {
             return weighted_cat(split(xs[0], std::vector<int64_t>{1, 0, 2}, 0), 0);
           }},
          {"size 2 of 5 along dim -2", {uniform64({5, 3}, -1, 1, 31)}, Tensor(), true,
           [](const TensorList& xs) { return weighted_cat(split(xs[0], 2, -2), -2); }},
          {"one piece only", {uniform64({3, 4}, -1, 1, 32)}, Tensor(), true,
           [](const TensorList& xs) { return split(xs[0], std::vector<int64_t>{1, 3}, 1)[1]; }},
          {"empty dim", {uniform64({0, 3}, -1, 1, 33)}, Tensor(), true,
           [](const TensorList& xs) { return weighted_cat(split(xs[0], 0, 0), 0); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "chunk",
    [](const TensorList& xs) { return weighted_cat(chunk(xs[0], 3, 0), 0); },
    [] {
      return std::vector<OpSample>{
          // 7 rows -> chunks of ceil(7/3) = 3: [1,2,3 | 4,5,6 | 7] weighted 1, 2, 3.
          {"hand 7 into 3", {t64({1, 2, 3, 4, 5, 6, 7}, {7})},
           t64({1, 2, 3, 8, 10, 12, 21}, {7}, false), true, nullptr},
          {"4 columns into 3 (gives 2 pieces)", {uniform64({2, 4}, -1, 1, 41)}, Tensor(), true,
           [](const TensorList& xs) { return weighted_cat(chunk(xs[0], 3, -1), -1); }},
          {"empty dim", {uniform64({1, 0}, -1, 1, 42)}, Tensor(), true,
           [](const TensorList& xs) { return weighted_cat(chunk(xs[0], 3, 1), 1); }}};
    }});

// ---------------------------------------------------------------------------------------------
// pad / pad_backward

namespace {
OpFn pad_fn(std::vector<int64_t> pads, PadMode mode, double value = 0.0) {
  return [=](const TensorList& xs) { return pad(xs[0], pads, mode, value); };
}
OpFn pad_backward_fn(Shape in_shape, std::vector<int64_t> pads, PadMode mode) {
  return [=](const TensorList& xs) { return pad_backward(xs[0], in_shape, pads, mode); };
}
}  // namespace

CVG_REGISTER_OP(OpSpec{
    "pad",
    pad_fn({2, 1}, PadMode::constant, 9.0),
    [] {
      const auto R = PadMode::reflect, P = PadMode::replicate, C = PadMode::circular,
                 K = PadMode::constant;
      const Tensor x3 = t64({1, 2, 3}, {3});
      return std::vector<OpSample>{
          // x = [1, 2, 3] padded (2 left, 1 right) in each mode.
          {"hand constant 9", {x3}, t64({9, 9, 1, 2, 3, 9}, {6}, false), true, nullptr},
          {"hand reflect", {x3}, t64({3, 2, 1, 2, 3, 2}, {6}, false), true, pad_fn({2, 1}, R)},
          {"hand replicate", {x3}, t64({1, 1, 1, 2, 3, 3}, {6}, false), true, pad_fn({2, 1}, P)},
          {"hand circular", {x3}, t64({2, 3, 1, 2, 3, 1}, {6}, false), true, pad_fn({2, 1}, C)},
          {"hand crop constant", {x3}, t64({2, 3, 0}, {3}, false), true, pad_fn({-1, 1}, K)},
          // [[1, 2], [3, 4]]: one column on the left, one row at the bottom, reflected.
          {"hand 2-d reflect", {t64({1, 2, 3, 4}, {2, 2})},
           t64({2, 1, 2, 4, 3, 4, 2, 1, 2}, {3, 3}, false), true, pad_fn({1, 0, 0, 1}, R)},
          {"constant 3-d two dims", {uniform64({2, 3, 4}, -1, 1, 51)}, Tensor(), true,
           pad_fn({1, 2, 0, 3}, K, -0.5)},
          {"reflect 4-d, pads up to size-1", {uniform64({1, 2, 3, 4}, -1, 1, 52)}, Tensor(), true,
           pad_fn({3, 3, 2, 1}, R)},
          {"replicate pads wider than the dim", {uniform64({2, 2, 3}, -1, 1, 53)}, Tensor(), true,
           pad_fn({4, 5, 3, 0}, P)},
          {"circular all three dims", {uniform64({2, 3, 4}, -1, 1, 54)}, Tensor(), true,
           pad_fn({4, 1, 2, 3, 1, 2}, C)},
          {"reflect with crop on the other side", {uniform64({3, 5}, -1, 1, 55)}, Tensor(), true,
           pad_fn({-2, 4, 2, -1}, R)},
          {"replicate crop", {uniform64({4, 5}, -1, 1, 56)}, Tensor(), true,
           pad_fn({-1, 2, 3, -2}, P)},
          {"transposed input reflect", {uniform64({4, 3}, -1, 1, 57)}, Tensor(), true,
           [](const TensorList& xs) {
             return pad(transpose(xs[0], 0, 1), {2, 1, 1, 2}, PadMode::reflect);
           }},
          {"empty batch", {uniform64({0, 3}, -1, 1, 58)}, Tensor(), true, pad_fn({1, 1}, R)},
          {"constant pad of an empty dim", {uniform64({1, 0}, -1, 1, 59)}, Tensor(), true,
           pad_fn({1, 2}, K, 3.0)},
          {"no pads", {uniform64({2, 3}, -1, 1, 60)}, Tensor(), true, pad_fn({}, R)}};
    }});

CVG_REGISTER_OP(OpSpec{
    "pad_backward",
    pad_backward_fn({3}, {2, 1}, PadMode::reflect),
    [] {
      const auto R = PadMode::reflect, P = PadMode::replicate, C = PadMode::circular,
                 K = PadMode::constant;
      // g = [1..6] for x of size 3 padded (2, 1): output positions read input indices
      //   reflect [2,1,0,1,2,1], replicate [0,0,0,1,2,2], circular [1,2,0,1,2,0],
      //   constant [-,-,0,1,2,-]; each input sums the g of the positions that read it.
      const Tensor g6 = t64({1, 2, 3, 4, 5, 6}, {6});
      return std::vector<OpSample>{
          {"hand reflect", {g6}, t64({3, 12, 6}, {3}, false), true, nullptr},
          {"hand replicate", {g6}, t64({6, 4, 11}, {3}, false), true,
           pad_backward_fn({3}, {2, 1}, P)},
          {"hand circular", {g6}, t64({9, 5, 7}, {3}, false), true,
           pad_backward_fn({3}, {2, 1}, C)},
          {"hand constant", {g6}, t64({3, 4, 5}, {3}, false), true,
           pad_backward_fn({3}, {2, 1}, K)},
          {"replicate 2-d", {uniform64({5, 9}, -1, 1, 61)}, Tensor(), true,
           pad_backward_fn({2, 3}, {2, 4, 1, 2}, P)},
          {"reflect 3-d", {uniform64({2, 5, 6}, -1, 1, 62)}, Tensor(), true,
           pad_backward_fn({2, 3, 4}, {1, 1, 2, 0}, R)},
          {"constant with crop", {uniform64({3, 4}, -1, 1, 63)}, Tensor(), true,
           pad_backward_fn({3, 3}, {-1, 2}, K)}};
    }});

// ---------------------------------------------------------------------------------------------
// flip

CVG_REGISTER_OP(OpSpec{
    "flip",
    [](const TensorList& xs) { return flip(xs[0], {1}); },
    [] {
      const Tensor x = t64({1, 2, 3, 4, 5, 6}, {2, 3});
      return std::vector<OpSample>{
          {"hand dim 1", {x}, t64({3, 2, 1, 6, 5, 4}, {2, 3}, false), true, nullptr},
          {"hand dims {0, -1}", {x}, t64({6, 5, 4, 3, 2, 1}, {2, 3}, false), true,
           [](const TensorList& xs) { return flip(xs[0], {0, -1}); }},
          {"3-d middle and first", {uniform64({2, 3, 4}, -1, 1, 71)}, Tensor(), true,
           [](const TensorList& xs) { return flip(xs[0], {-2, 0}); }},
          {"no dims", {uniform64({2, 3}, -1, 1, 72)}, Tensor(), true,
           [](const TensorList& xs) { return flip(xs[0], {}); }},
          {"transposed input", {uniform64({3, 4}, -1, 1, 73)}, Tensor(), true,
           [](const TensorList& xs) { return flip(transpose(xs[0], 0, 1), {1}); }},
          {"scalar", {uniform64({}, -1, 1, 74)}, Tensor(), true,
           [](const TensorList& xs) { return flip(xs[0], {0}); }},
          {"empty", {uniform64({0, 3}, -1, 1, 75)}, Tensor(), true, nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// Plain tests

TEST_CASE("cat promotes dtypes and keeps each input's gradient dtype", "[ops][shape]") {
  const Tensor a = from_vector<float>({1, 2}, {2}, TensorOptions{}.with_requires_grad(true));
  const Tensor b = t64({3}, {1});
  const Tensor c = cat({a, b});
  CHECK(c.dtype() == DType::float64);
  CHECK(c.to_vector<double>() == std::vector<double>{1, 2, 3});
  sum(c * t64({1, 2, 3}, {3}, false)).backward();
  CHECK(a.grad().dtype() == DType::float32);
  CHECK(a.grad().to_vector<float>() == std::vector<float>{1, 2});
  CHECK(b.grad().to_vector<double>() == std::vector<double>{3});

  const Tensor i = cat({from_vector<int32_t>({1}, {1}, TensorOptions{}.with_dtype(DType::int32)),
                        from_vector<int64_t>({2}, {1}, TensorOptions{}.with_dtype(DType::int64))});
  CHECK(i.dtype() == DType::int64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, 2});
}

TEST_CASE("split and chunk return views with PyTorch's piece sizes", "[ops][shape]") {
  const Tensor x = arange(0, 7);
  const TensorList pieces = split(x, 3);
  REQUIRE(pieces.size() == 3);
  CHECK(pieces[0].to_vector<float>() == std::vector<float>{0, 1, 2});
  CHECK(pieces[2].to_vector<float>() == std::vector<float>{6});
  CHECK(pieces[1].storage() == x.storage());  // a view, no copy

  auto sizes = [](const TensorList& ts) {
    std::vector<int64_t> s;
    for (const Tensor& t : ts) s.push_back(t.shape()[0]);
    return s;
  };
  CHECK(sizes(chunk(arange(0, 5), 3)) == std::vector<int64_t>{2, 2, 1});
  CHECK(sizes(chunk(arange(0, 6), 4)) == std::vector<int64_t>{2, 2, 2});  // fewer than asked
  CHECK(sizes(chunk(zeros({0}), 3)) == std::vector<int64_t>{0, 0, 0});
  CHECK(sizes(split(zeros({0}), 2)) == std::vector<int64_t>{0});
  CHECK(sizes(split(arange(0, 6), std::vector<int64_t>{4, 0, 2})) ==
        std::vector<int64_t>{4, 0, 2});
}

TEST_CASE("pad handles integer tensors and returns a fresh tensor for empty pads",
          "[ops][shape]") {
  const Tensor x =
      from_vector<int64_t>({1, 2, 3, 4}, {2, 2}, TensorOptions{}.with_dtype(DType::int64));
  const Tensor y = pad(x, {0, 1, 1, 0}, PadMode::constant, 7);
  CHECK(y.shape() == Shape{3, 3});
  CHECK(y.to_vector<int64_t>() == std::vector<int64_t>{7, 7, 7, 1, 2, 7, 3, 4, 7});
  const Tensor r = pad(x, {1, 1}, PadMode::replicate);
  CHECK(r.to_vector<int64_t>() == std::vector<int64_t>{1, 1, 2, 2, 3, 3, 4, 4});
  const Tensor same = pad(x, {});
  CHECK(same.storage() != x.storage());
  CHECK(same.to_vector<int64_t>() == x.to_vector<int64_t>());
}

TEST_CASE("pad's double backward is pad of the gradient's gradient", "[ops][shape][grad]") {
  // y = pad(x); g -> pad_backward(g) -> its backward must be pad again (with zero fill).
  const Tensor x = t64({1, 2, 3}, {3});
  const Tensor y = pad(x, {1, 2}, PadMode::reflect);
  const Tensor g = t64({1, 1, 1, 1, 1, 1}, {6});
  const Tensor gx = grad({y}, {x}, {g}, {.create_graph = true})[0];
  // reflect (1, 2) of size 3 reads [1, 0, 1, 2, 1, 0]: counts 2, 3, 1.
  CHECK(gx.to_vector<double>() == std::vector<double>{2, 3, 1});
  const Tensor u = t64({10, 20, 30}, {3}, false);
  const Tensor gg = grad({gx}, {g}, {u})[0];
  CHECK(gg.to_vector<double>() == std::vector<double>{20, 10, 20, 30, 20, 10});
}

TEST_CASE("shape ops: errors name the op and the offending values", "[ops][shape][errors]") {
  const Tensor a = zeros({2, 3}), b = zeros({2, 4}), c = zeros({3});
  std::string m = error_of([&] { cat({a, b}, 0); });
  CHECK_THAT(m, Catch::Contains("cat:") && Catch::Contains("[2, 4]") &&
                    Catch::Contains("[2, 3]") && Catch::Contains("except dim 0"));
  m = error_of([&] { cat({a, c}, 0); });
  CHECK_THAT(m, Catch::Contains("cat: tensor 1 has 1 dims but tensor 0 has 2"));
  CHECK_THAT(error_of([&] { cat({}, 0); }), Catch::Contains("cat: expected a non-empty list"));
  CHECK_THAT(error_of([&] { cat({a, a}, 2); }), Catch::Contains("cat: dim 2"));
  CHECK_THAT(error_of([&] { stack({a, b}); }),
             Catch::Contains("stack: tensor 1 has shape [2, 4] but tensor 0 has shape [2, 3]"));

  m = error_of([&] { pad(zeros({1, 3}), {3, 3}, PadMode::reflect); });
  CHECK_THAT(m,
             Catch::Contains("pad: reflect padding (3, 3) of dim 1 must be less than its size 3"));
  m = error_of([&] { pad(zeros({1, 3}), {4, 0}, PadMode::circular); });
  CHECK_THAT(m,
             Catch::Contains("pad: circular padding (4, 0) of dim 1 must not exceed its size 3"));
  m = error_of([&] { pad(zeros({2, 0}), {1, 0}, PadMode::replicate); });
  CHECK_THAT(m, Catch::Contains("replicate padding (1, 0) of dim 1 needs a non-empty dim"));
  CHECK_THAT(error_of([&] {
               pad(a, {1, 2, 3});
             }),
             Catch::Contains("pad: pads must come in (left, right) pairs"));
  CHECK_THAT(error_of([&] { pad(a, {1, 1, 1, 1, 1, 1}); }),
             Catch::Contains("pad: 6 pad values [1, 1, 1, 1, 1, 1] cover more than the 2 dims"));
  CHECK_THAT(error_of([&] { pad(a, {-2, -2}); }),
             Catch::Contains("pad: pads (-2, -2) crop dim 1 of size 3 below zero"));
  CHECK_THAT(error_of([&] { pad(a, {1, 1}, PadMode::reflect, 2.0); }),
             Catch::Contains("pad: reflect mode takes no fill value"));

  CHECK_THAT(error_of([&] { split(c, std::vector<int64_t>{1, 1}); }),
             Catch::Contains("split: sizes [1, 1] add up to 2 but dim 0 of shape [3] has size 3"));
  CHECK_THAT(error_of([&] { split(c, 0); }), Catch::Contains("split: split_size must be positive"));
  CHECK_THAT(error_of([&] { chunk(c, 0); }),
             Catch::Contains("chunk: chunks must be positive, got 0"));
  CHECK_THAT(error_of([&] { flip(a, {1, -1}); }),
             Catch::Contains("flip: dim -1 appears more than once in [1, -1]"));
  CHECK_THAT(error_of([&] { flip(a, {2}); }), Catch::Contains("flip: dim 2 is out of range"));
}
