// Tests of spatial_softmax and soft_argmax (kernels/spatial.h): hand-computed planes, sharp
// peaks, both coordinate units, temperature, gradcheck / gradgradcheck samples, stability for
// large logits, and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/spatial.h"
#include "kernels/spatial_math.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

using Catch::Matchers::Contains;

// One plane of zeros with `peak` at (i, j).
Tensor peak_plane(int64_t H, int64_t W, int64_t i, int64_t j, double peak) {
  std::vector<double> v(H * W, 0.0);
  v[i * W + j] = peak;
  return t64(v, {1, 1, H, W});
}

OpFn argmax_fn(CoordUnits units, double temperature = 1.0) {
  return [=](const TensorList& xs) { return soft_argmax(xs[0], units, temperature); };
}

}  // namespace

CVG_REGISTER_OP(OpSpec{
    "spatial_softmax",
    [](const TensorList& xs) { return spatial_softmax(xs[0]); },
    [] {
      const double l2 = std::log(2.0), l3 = std::log(3.0), l4 = std::log(4.0);
      return std::vector<OpSample>{
          // Plane 0 is flat; plane 1 holds log(1..4), so p = (1..4) / 10.
          {"hand two 2 x 2 planes",
           {t64({0, 0, 0, 0, 0, l2, l3, l4}, {1, 2, 2, 2})},
           t64({0.25, 0.25, 0.25, 0.25, 0.1, 0.2, 0.3, 0.4}, {1, 2, 2, 2}, false),
           true,
           nullptr},
          // Temperature 2 halves the logits: (0, 2 log 3) behaves as (0, log 3).
          {"hand temperature 2",
           {t64({0, 2 * l3}, {1, 1, 1, 2})},
           t64({0.25, 0.75}, {1, 1, 1, 2}, false),
           true,
           [](const TensorList& xs) { return spatial_softmax(xs[0], 2.0); }},
          {"2 x 3 x 4 x 5", {uniform64({2, 3, 4, 5}, -2, 2, 1)}, Tensor(), true, nullptr},
          // 63 elements per plane: the CPU kernel's 8-lane blocks and a tail of 7.
          {"2 x 2 x 7 x 9", {uniform64({2, 2, 7, 9}, -3, 3, 7)}, Tensor(), true, nullptr},
          {"temperature 0.5, transposed", {uniform64({2, 2, 5, 3}, -2, 2, 2)}, Tensor(), true,
           [](const TensorList& xs) { return spatial_softmax(transpose(xs[0], 2, 3), 0.5); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "soft_argmax (pixels)",
    argmax_fn(CoordUnits::Pixels),
    [] {
      const double l3 = std::log(3.0);
      return std::vector<OpSample>{
          // p = (0.25, 0.75) over columns 0 and 1 of one row.
          {"hand 1 x 2 plane", {t64({0, l3}, {1, 1, 1, 2})}, t64({0.75, 0}, {1, 1, 2}, false), true,
           nullptr},
          {"hand flat 2 x 2 plane", {t64({1, 1, 1, 1}, {1, 1, 2, 2})}, t64({0.5, 0.5}, {1, 1, 2}, false),
           true, nullptr},
          // exp(-200) is far below the tolerance: the answer is the peak's (j, i).
          {"hand sharp peak at (1, 2)", {peak_plane(3, 4, 1, 2, 200)}, t64({2, 1}, {1, 1, 2}, false),
           false, nullptr},
          {"2 x 3 x 4 x 5", {uniform64({2, 3, 4, 5}, -2, 2, 3)}, Tensor(), true, nullptr},
          {"temperature 0.7", {uniform64({1, 2, 3, 6}, -2, 2, 4)}, Tensor(), true,
           argmax_fn(CoordUnits::Pixels, 0.7)}};
    }});

CVG_REGISTER_OP(OpSpec{
    "soft_argmax (normalized)",
    argmax_fn(CoordUnits::Normalized),
    [] {
      const double l3 = std::log(3.0);
      return std::vector<OpSample>{
          // Column centres -0.5 and 0.5; one row has y = 0.
          {"hand 1 x 2 plane", {t64({0, l3}, {1, 1, 1, 2})}, t64({0.25, 0}, {1, 1, 2}, false), true,
           nullptr},
          // Peak at row 1 of 3, column 2 of 4: x = 5 / 4 - 1, y = 3 / 3 - 1.
          {"hand sharp peak at (1, 2)", {peak_plane(3, 4, 1, 2, 200)}, t64({0.25, 0}, {1, 1, 2}, false),
           false, nullptr},
          {"hand sharp peak at a corner (2, 0)", {peak_plane(3, 4, 2, 0, 200)},
           t64({-0.75, 2.0 / 3.0}, {1, 1, 2}, false), false, nullptr},
          {"2 x 3 x 5 x 4", {uniform64({2, 3, 5, 4}, -2, 2, 5)}, Tensor(), true, nullptr},
          {"temperature 2, transposed", {uniform64({2, 2, 3, 4}, -2, 2, 6)}, Tensor(), true,
           [](const TensorList& xs) {
             return soft_argmax(transpose(xs[0], 2, 3), CoordUnits::Normalized, 2.0);
           }}};
    }});

TEST_CASE("spatial_softmax: every plane sums to 1, large logits do not overflow", "[ops][spatial]") {
  const Tensor x = uniform64({3, 4, 7, 9}, -5, 5, 11, false);
  const Tensor y = spatial_softmax(x);
  CHECK(allclose(sum(y, {2, 3}), ones({3, 4}, TensorOptions{}.with_dtype(DType::float64)), 1e-12, 1e-12));
  // Shift invariance: +1000 would overflow exp without the max subtraction.
  CHECK(allclose(spatial_softmax(x + 1000.0), y, 1e-12, 1e-12));
  const Tensor y32 = spatial_softmax((x * 30.0).to(DType::float32));
  CHECK(allclose(sum(y32, {2, 3}), ones({3, 4}), 1e-5, 1e-5));
  // A NaN poisons its own plane only.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor yn = spatial_softmax(t64({0, 1, nan, 2, 0, 1, 2, 3}, {1, 2, 2, 2}, false));
  const std::vector<double> vn = yn.to_vector<double>();
  for (int k = 0; k < 4; ++k) CHECK(std::isnan(vn[k]));
  for (int k = 4; k < 8; ++k) CHECK(std::isfinite(vn[k]));
  // Equals softmax over the flattened plane.
  CHECK(allclose(reshape(y, {3, 4, 63}), reshape(spatial_softmax(reshape(x, {3, 4, 63, 1})), {3, 4, 63}),
                 1e-12, 1e-12));
}

// Distance between a and b in units in the last place of b.
template <typename T>
double ulps(T a, T b) {
  return std::fabs(static_cast<double>(a) - static_cast<double>(b)) /
         static_cast<double>(std::nextafter(b, T(1)) - b);
}

TEMPLATE_TEST_CASE("exp_nonpositive: within 2 ulp of std::exp on x <= 0", "[ops][spatial]", float, double) {
  using T = TestType;
  const T low = ExpConstants<T>::kLow;
  double worst = 0;
  // A dense sweep of [kLow, 0] (every range-reduction interval, many points in each), and the
  // neighbourhood of 0 where r is tiny.
  for (int i = 0; i <= 200000; ++i) {
    const T x = low * static_cast<T>(i) / T(200000);
    worst = std::max(worst, ulps(exp_nonpositive(x), std::exp(x)));
  }
  for (T x = T(-1e-3); x < T(-1e-30); x *= T(0.5)) worst = std::max(worst, ulps(exp_nonpositive(x), std::exp(x)));
  CHECK(worst <= 2.0);
  CHECK(exp_nonpositive(T(0)) == T(1));
  CHECK(exp_nonpositive(T(-0.0)) == T(1));
  CHECK(exp_nonpositive(low * T(1.01)) == T(0));
  CHECK(exp_nonpositive(-std::numeric_limits<T>::max()) == T(0));
  CHECK(exp_nonpositive(-std::numeric_limits<T>::infinity()) == T(0));
}

TEST_CASE("spatial_softmax: non-finite planes follow softmax's rules", "[ops][spatial]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // Planes of 9 (one 8-lane block and a tail), float32: an -inf element gets 0 and the rest is
  // the softmax of the others; all -inf is NaN; a +inf element makes the plane NaN (as
  // PyTorch's softmax: the sum of exp(x - max) is NaN).
  std::vector<double> v(27, 0.0);
  v[4] = -inf;
  for (int j = 9; j < 18; ++j) v[j] = -inf;
  v[18 + 8] = inf;
  const std::vector<float> y = spatial_softmax(tensor(v, {1, 3, 3, 3})).to_vector<float>();
  for (int j = 0; j < 9; ++j) CHECK(y[j] == Approx(j == 4 ? 0.0 : 1.0 / 8));
  CHECK(y[4] == 0.0f);
  for (int j = 9; j < 18; ++j) CHECK(std::isnan(y[j]));
  for (int j = 18; j < 27; ++j) CHECK(std::isnan(y[j]));
  v.assign(27, 1.0);
  v[20] = nan;
  const std::vector<float> yn = spatial_softmax(tensor(v, {3, 1, 3, 3})).to_vector<float>();
  for (int j = 0; j < 18; ++j) CHECK(yn[j] == Approx(1.0 / 9));
  for (int j = 18; j < 27; ++j) CHECK(std::isnan(yn[j]));
}

TEST_CASE("spatial_softmax: float32 matches float64 on app-sized planes", "[ops][spatial]") {
  // 35 x 35 and 24 x 24 maps (the landmarks app), peaked logits: the vectorised float32 path
  // against the float64 one.
  for (const int64_t hw : {24, 35}) {
    const Tensor x = uniform64({2, 30, hw, hw}, -12, 12, 21, false);
    const Tensor y64 = spatial_softmax(x), y32 = spatial_softmax(x.to(DType::float32));
    CHECK(allclose(y32.to(DType::float64), y64, 1e-5, 1e-9));
  }
}

TEST_CASE("soft_argmax: sharp peaks on float32 planes of several sizes", "[ops][spatial]") {
  for (int64_t H : {1, 5, 40}) {
    for (int64_t W : {1, 7, 33}) {
      const int64_t i = H / 2, j = W - 1;
      const Tensor x = peak_plane(H, W, i, j, 80).to(DType::float32);
      INFO(H << " x " << W);
      const std::vector<float> px = soft_argmax(x).to_vector<float>();
      CHECK(px[0] == Approx(j).margin(1e-4));
      CHECK(px[1] == Approx(i).margin(1e-4));
      const std::vector<float> pn = soft_argmax(x, CoordUnits::Normalized).to_vector<float>();
      CHECK(pn[0] == Approx((2.0 * j + 1) / W - 1).margin(1e-4));
      CHECK(pn[1] == Approx((2.0 * i + 1) / H - 1).margin(1e-4));
    }
  }
}

TEST_CASE("soft_argmax: the fused backward equals the create_graph backward", "[ops][spatial][grad]") {
  for (CoordUnits u : {CoordUnits::Pixels, CoordUnits::Normalized}) {
    const Tensor x = uniform64({2, 3, 4, 6}, -2, 2, 12);
    const Tensor g = uniform64({2, 3, 2}, -1, 1, 13, false);
    const Tensor a = grad({soft_argmax(x, u, 0.8)}, {x}, {g})[0];
    const Tensor b = grad({soft_argmax(x, u, 0.8)}, {x}, {g}, {.create_graph = true})[0];
    CHECK(allclose(a, b, 1e-12, 1e-14));
    // The expectation is unchanged by adding a constant: the gradient sums to 0 per plane.
    CHECK(allclose(sum(a, {2, 3}), zeros({2, 3}, TensorOptions{}.with_dtype(DType::float64)), 0, 1e-14));
  }
}

TEST_CASE("spatial ops: errors", "[ops][spatial][errors]") {
  const Tensor x = zeros({1, 2, 3, 3});
  CHECK_THAT(error_of([&] { spatial_softmax(zeros({2, 3, 3})); }),
             Contains("spatial_softmax: input must be N x K x H x W, got shape [2, 3, 3]"));
  CHECK_THAT(error_of([&] { soft_argmax(zeros({1, 1, 2, 3, 3})); }),
             Contains("soft_argmax: input must be N x K x H x W"));
  CHECK_THAT(error_of([&] { spatial_softmax(x, 0.0); }),
             Contains("spatial_softmax: temperature must be positive and finite, got 0"));
  CHECK_THAT(error_of([&] { soft_argmax(x, CoordUnits::Pixels, -1.0); }),
             Contains("soft_argmax: temperature must be positive and finite, got -1"));
  CHECK_THAT(error_of([&] { soft_argmax(x, CoordUnits::Pixels, std::numeric_limits<double>::infinity()); }),
             Contains("soft_argmax: temperature"));
  CHECK_THAT(error_of([&] { soft_argmax(zeros({1, 1, 0, 3})); }), Contains("soft_argmax") && Contains("empty"));
  CHECK_THAT(error_of([&] { spatial_softmax(zeros({1, 1, 2, 2}, TensorOptions{}.with_dtype(DType::int64))); }),
             Contains("spatial_softmax") && Contains("int64"));
}
