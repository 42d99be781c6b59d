// Tests of the thin-plate-spline grids (kernels/tps.h): registry entries (hand identity cases,
// gradcheck in the displacement / params), and plain tests that the TPS is the identity for zero
// displacement, passes exactly through the displaced control points, reproduces affine maps,
// matches the weights formula, and refuses degenerate control points.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "kernels/matmul.h"
#include "kernels/sample.h"
#include "kernels/tps.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

using Catch::Matchers::Contains;

// Five control points, no three on a line.
Tensor control5() { return t64({-0.8, -0.7, 0.6, -0.5, 0.1, 0.2, -0.4, 0.9, 0.7, 0.6}, {5, 2}, false); }

// The base grid of affine_grid for an H x W output, N x H x W x 2.
Tensor base_grid(int64_t n, int64_t h, int64_t w, bool align) {
  const Tensor id = expand(t64({1, 0, 0, 0, 1, 0}, {1, 2, 3}, false), {n, 2, 3});
  return affine_grid(id, {n, 1, h, w}, align);
}

// Identity params of tps_grid_weights: zero kernel weights, A_1 = 0, A_x = (1, 0), A_y = (0, 1).
std::vector<double> identity_params(int64_t k) {
  std::vector<double> v(static_cast<size_t>((k + 3) * 2), 0.0);
  v[static_cast<size_t>((k + 1) * 2)] = 1.0;
  v[static_cast<size_t>((k + 2) * 2 + 1)] = 1.0;
  return v;
}

}  // namespace

CVG_REGISTER_OP(OpSpec{
    "tps_grid",
    [](const TensorList& xs) { return tps_grid(xs[0], xs[1], {4, 5}, false); },
    [] {
      // Zero displacement: the base grid, align_corners x in {-1, 0, 1}, y in {-1, 1}.
      return std::vector<OpSample>{
          {"hand zero displacement is the base grid", {control5(), t64(std::vector<double>(10, 0.0), {1, 5, 2})},
           t64({-1, -1, 0, -1, 1, -1, -1, 1, 0, 1, 1, 1}, {1, 2, 3, 2}, false), false,
           [](const TensorList& xs) { return tps_grid(xs[0], xs[1], {2, 3}, true); }},
          {"5 controls, batch 2", {control5(), uniform64({2, 5, 2}, -0.3, 0.3, 700)}, Tensor(),
           true, nullptr},
          {"4 controls, align_corners, 3 x 6",
           {t64({-1, -1, 1, -1, -1, 1, 1, 1}, {4, 2}, false), uniform64({1, 4, 2}, -0.2, 0.2, 701)},
           Tensor(), true,
           [](const TensorList& xs) { return tps_grid(xs[0], xs[1], {3, 6}, true); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "tps_grid_weights",
    [](const TensorList& xs) { return tps_grid_weights(xs[0], xs[1], {3, 4}, false); },
    [] {
      return std::vector<OpSample>{
          {"hand identity params", {control5(), t64(identity_params(5), {1, 8, 2}, false)},
           t64({-1, -1, 0, -1, 1, -1, -1, 1, 0, 1, 1, 1}, {1, 2, 3, 2}, false), false,
           [](const TensorList& xs) { return tps_grid_weights(xs[0], xs[1], {2, 3}, true); }},
          {"random params, batch 2", {control5(), uniform64({2, 8, 2}, -0.5, 0.5, 710)},
           Tensor(), true, nullptr}};
    }});

TEST_CASE("tps_grid: zero displacement is affine_grid's identity grid", "[ops][tps]") {
  for (bool align : {false, true}) {
    INFO("align_corners " << align);
    const Tensor g = tps_grid(control5(), zeros({3, 5, 2}, TensorOptions{}.with_dtype(DType::float64)),
                              {6, 7}, align);
    CHECK(max_abs_diff(g, base_grid(3, 6, 7, align)) == 0.0);
  }
}

TEST_CASE("tps_grid: the grid at a control point is the control point plus its displacement",
          "[ops][tps]") {
  // A 5 x 5 align_corners grid has its base points at {-1, -0.5, 0, 0.5, 1}^2; put 6 control
  // points on some of them.
  const std::vector<std::pair<int, int>> at = {{0, 0}, {0, 4}, {4, 0}, {4, 4}, {2, 1}, {1, 3}};
  std::vector<double> c;
  for (auto [i, j] : at) {
    c.push_back(-1 + 0.5 * j);
    c.push_back(-1 + 0.5 * i);
  }
  const Tensor control = t64(c, {6, 2}, false);
  const Tensor d = uniform64({2, 6, 2}, -0.3, 0.3, 720, false);
  const std::vector<double> g = tps_grid(control, d, {5, 5}, true).to_vector<double>();
  const std::vector<double> dv = d.to_vector<double>();
  for (int n = 0; n < 2; ++n)
    for (size_t k = 0; k < at.size(); ++k)
      for (int e = 0; e < 2; ++e) {
        INFO("batch " << n << " control " << k << " coordinate " << e);
        const auto [i, j] = at[k];
        const double got = g[static_cast<size_t>(((n * 5 + i) * 5 + j) * 2 + e)];
        CHECK(std::fabs(got - (c[2 * k + e] + dv[(n * 6 + k) * 2 + e])) < 1e-12);
      }
}

TEST_CASE("tps_grid: an affine displacement gives that affine map everywhere", "[ops][tps]") {
  // d(c) = A c + t: the TPS has no bending, so grid(p) = p + A p + t at every base point.
  const double a[2][2] = {{0.1, -0.2}, {0.05, 0.15}}, t[2] = {0.03, -0.04};
  const std::vector<double> c = control5().to_vector<double>();
  std::vector<double> d;
  for (int k = 0; k < 5; ++k)
    for (int e = 0; e < 2; ++e) d.push_back(a[e][0] * c[2 * k] + a[e][1] * c[2 * k + 1] + t[e]);
  const std::vector<double> g =
      tps_grid(control5(), t64(d, {1, 5, 2}, false), {4, 6}, false).to_vector<double>();
  const std::vector<double> b = base_grid(1, 4, 6, false).to_vector<double>();
  for (size_t p = 0; p < b.size() / 2; ++p)
    for (int e = 0; e < 2; ++e) {
      const double expect = b[2 * p + e] + a[e][0] * b[2 * p] + a[e][1] * b[2 * p + 1] + t[e];
      CHECK(std::fabs(g[2 * p + e] - expect) < 1e-12);
    }
}

TEST_CASE("tps_grid_weights: sum_j W_j U(|p - c_j|^2) + A (1, x, y) at every base point",
          "[ops][tps]") {
  const Tensor params = uniform64({1, 8, 2}, -1, 1, 730, false);
  const std::vector<double> w = params.to_vector<double>();
  const std::vector<double> c = control5().to_vector<double>();
  const std::vector<double> g = tps_grid_weights(control5(), params, {3, 4}, true).to_vector<double>();
  const std::vector<double> b = base_grid(1, 3, 4, true).to_vector<double>();
  for (size_t p = 0; p < 12; ++p)
    for (int e = 0; e < 2; ++e) {
      const double x = b[2 * p], y = b[2 * p + 1];
      double expect = w[5 * 2 + e] + x * w[6 * 2 + e] + y * w[7 * 2 + e];
      for (int j = 0; j < 5; ++j) {
        const double r2 = (x - c[2 * j]) * (x - c[2 * j]) + (y - c[2 * j + 1]) * (y - c[2 * j + 1]);
        expect += w[j * 2 + e] * r2 * std::log(r2 + 1e-5);
      }
      CHECK(std::fabs(g[2 * p + e] - expect) < 1e-12);
    }
}

TEST_CASE("tps_grid: degenerate control points and bad shapes are errors", "[ops][tps]") {
  const auto f64 = TensorOptions{}.with_dtype(DType::float64);
  CHECK_THAT(error_of([&] {
               tps_grid(t64({0, 0, 1, 0, 0, 1, 1, 0}, {4, 2}, false), zeros({1, 4, 2}, f64), {3, 3});
             }),
             Contains("tps_grid: the TPS system of the 4 control points is singular"));
  CHECK_THAT(error_of([&] {
               tps_grid(t64({-1, -1, 0, 0, 1, 1}, {3, 2}, false), zeros({1, 3, 2}, f64), {3, 3});
             }),
             Contains("is singular"));
  CHECK_THAT(error_of([&] { tps_grid(t64({0, 0, 1, 0}, {2, 2}, false), zeros({1, 2, 2}, f64), {3, 3}); }),
             Contains("tps_grid: a TPS needs at least 3 control points, got 2"));
  CHECK_THAT(error_of([&] { tps_grid(control5(), zeros({1, 4, 2}, f64), {3, 3}); }),
             Contains("tps_grid: displacement must be N x K x 2 with K = 5 control points, got "
                      "shape [1, 4, 2]"));
  CHECK_THAT(error_of([&] { tps_grid(control5(), zeros({1, 5, 2}, f64), {0, 3}); }),
             Contains("tps_grid: size must be {H, W} with H, W >= 1, got [0, 3]"));
  CHECK_THAT(error_of([&] { tps_grid_weights(control5(), zeros({1, 5, 2}, f64), {3, 3}); }),
             Contains("tps_grid_weights: params must be N x (K + 3) x 2 with K = 5"));
  CHECK_THAT(error_of([&] { tps_grid(zeros({5, 3}), zeros({1, 5, 2}), {3, 3}); }),
             Contains("tps_grid: control must be K x 2 (x, y), got shape [5, 3]"));
}
