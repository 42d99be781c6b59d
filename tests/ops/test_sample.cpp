// Tests of grid_sample, its backward ops, affine_grid, flow_warp and interpolate
// (kernels/sample.h): registry entries with hand-computed cases (corners under both
// align_corners meanings, samples outside the image for every padding mode, nearest rounding,
// PyTorch's interpolate sizes), float64 gradcheck and gradgradcheck samples whose grid points
// keep away from the kinks (integer pixel coordinates, and the half-integers where reflection
// folds), and plain test cases for identities, shifts, reference formulas and errors.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <limits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/sample.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

using Catch::Matchers::Contains;
using M = GridSampleMode;
using P = GridPadding;

// The 2 x 4 plane of the hand cases, as 1 x 1 x 2 x 4:
//    1 2 3 4
//    5 6 7 8
// With W = 4 and H = 2 every grid value below maps to a dyadic pixel coordinate:
//   align_corners: px = 1.5 (x + 1), py = (y + 1) / 2;   otherwise: px = 2 x + 1.5, py = y + 0.5.
Tensor plane24() { return t64({1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4}); }

// Grid points (x, y) as a 1 x 1 x P x 2 grid without grad.
Tensor points(const std::vector<double>& xy) {
  return t64(xy, {1, 1, static_cast<int64_t>(xy.size() / 2), 2}, false);
}

// Corners, centre and two points outside: (-1,-1) (1,-1) (-1,1) (1,1) (0,0), then
// (-1.375, 1.5) and (2.25, 0) (align_corners false: pixels (-1.25, 2) and (6, 0.5)).
Tensor hand_grid() {
  return points({-1, -1, 1, -1, -1, 1, 1, 1, 0, 0, -1.375, 1.5, 2.25, 0});
}

OpFn sampler(M mode, P padding, bool align) {
  return [=](const TensorList& xs) { return grid_sample(xs[0], xs[1], mode, padding, align); };
}

// Pixel coordinate p (of an axis of `size` pixels) as a normalised grid value.
double to_grid(double p, int64_t size, bool align) {
  return align ? 2.0 * p / static_cast<double>(size - 1) - 1.0
               : (2.0 * p + 1.0) / static_cast<double>(size) - 1.0;
}

// Moves the fractional part of a pixel coordinate into [0.1, 0.4] u [0.6, 0.9]: away from the
// integers (bilinear's kinks, nearest's ties are at the half-integers ... and reflection's folds).
double off_kinks(double p) {
  const double f0 = std::floor(p), f = p - f0;
  return f0 + (f < 0.5 ? 0.1 + 0.6 * f : 0.6 + 0.6 * (f - 0.5));
}

// A random N x Ho x Wo x 2 grid for an H x W input whose pixel coordinates lie in
// [lo, size - 1 + hi] and keep away from the kinks; requires grad.
Tensor grid_off_kinks(int64_t n, int64_t ho, int64_t wo, int64_t h, int64_t w, bool align,
                      double lo, double hi, uint64_t seed) {
  const Tensor u = uniform64({n, ho, wo, 2}, 0, 1, seed, false);
  std::vector<double> v = u.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t size = i % 2 == 0 ? w : h;
    const double p = off_kinks(lo + v[i] * (static_cast<double>(size - 1) + hi - lo));
    v[i] = to_grid(p, size, align);
  }
  return t64(v, {n, ho, wo, 2});
}

// Random gradcheck samples of grid_sample for one mode, padding and align_corners.
std::vector<OpSample> random_samples(M mode, P padding, bool align, uint64_t seed) {
  std::vector<OpSample> s;
  const std::string tag = std::string(align ? "align_corners" : "no align_corners");
  s.push_back({"2x3x5x6 input, 4x3 grid reaching outside, " + tag,
               {uniform64({2, 3, 5, 6}, -1, 1, seed),
                grid_off_kinks(2, 4, 3, 5, 6, align, -2.5, 2.5, seed + 1)},
               Tensor(), true, sampler(mode, padding, align)});
  s.push_back({"1x2x4x3 input, transposed 3x5 grid far outside, " + tag,
               {uniform64({1, 2, 4, 3}, -1, 1, seed + 2),
                grid_off_kinks(1, 5, 3, 4, 3, align, -7, 7, seed + 3)},
               Tensor(), true, [=](const TensorList& xs) {
                 return grid_sample(xs[0], permute(xs[1], {0, 2, 1, 3}), mode, padding, align);
               }});
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// grid_sample

CVG_REGISTER_OP(OpSpec{
    "grid_sample (hand cases)",
    sampler(M::Bilinear, P::Zeros, true),
    [] {
      // Points: the 4 corners, the centre, (-1.375, 1.5), (2.25, 0).
      // align_corners: pixels (0,0) (3,0) (0,1) (3,1) (1.5,0.5) (-0.5625, 1.25) (4.875, 0.5).
      // Outside, Zeros: (-0.5625, 1.25) reads x[1][0] = 5 with weight 0.4375 * 0.75: 1.640625;
      // (4.875, 0.5) reads nothing. Border clamps to (0, 1): 5 and (3, 0.5): 6. Reflection
      // folds about 0 and 3 to (0.5625, 0.75): rows (1.5625, 5.5625) -> 4.5625, and (1.125, 0.5):
      // rows (2.125, 6.125) -> 4.125.
      // No align_corners: pixels (-0.5,-0.5) (3.5,-0.5) (-0.5,1.5) (3.5,1.5) (1.5,0.5) (-1.25,2)
      // (6, 0.5). Zeros: the corners read a quarter of their pixel, the last two nothing.
      // Border: the corner pixels, then (0, 1): 5 and (3, 0.5): 6. Reflection folds about -0.5
      // and 3.5 (and about -0.5, 1.5 in y): (0.25, 1): 5.25 and (1, 0.5): 4.
      const Tensor x = plane24();
      auto row = [](std::vector<double> v) { return t64(v, {1, 1, 1, 7}, false); };
      return std::vector<OpSample>{
          {"align_corners, zeros", {x, hand_grid()},
           row({1, 4, 5, 8, 4.5, 1.640625, 0}), false, sampler(M::Bilinear, P::Zeros, true)},
          {"align_corners, border", {x, hand_grid()},
           row({1, 4, 5, 8, 4.5, 5, 6}), false, sampler(M::Bilinear, P::Border, true)},
          {"align_corners, reflection", {x, hand_grid()},
           row({1, 4, 5, 8, 4.5, 4.5625, 4.125}), false,
           sampler(M::Bilinear, P::Reflection, true)},
          {"no align_corners, zeros", {x, hand_grid()},
           row({0.25, 1, 1.25, 2, 4.5, 0, 0}), false, sampler(M::Bilinear, P::Zeros, false)},
          {"no align_corners, border", {x, hand_grid()},
           row({1, 4, 5, 8, 4.5, 5, 6}), false, sampler(M::Bilinear, P::Border, false)},
          {"no align_corners, reflection", {x, hand_grid()},
           row({1, 4, 5, 8, 4.5, 5.25, 4}), false, sampler(M::Bilinear, P::Reflection, false)},
          // Nearest on one row 10 20 30 40 (H = 1, no align_corners: px = 2 x + 1.5): pixels
          // 0.5, 1.5, 2.5 round half to even (0, 2, 2); 1.0 -> 1; 2.75 -> 3; -0.25 -> 0;
          // -0.5 -> -0 = 0 (inside); 3.5 -> 4 (outside: 0 with zeros, 40 with border).
          {"nearest rounds half to even, zeros",
           {t64({10, 20, 30, 40}, {1, 1, 1, 4}),
            points({-0.5, 0, 0, 0, 0.5, 0, -0.25, 0, 0.625, 0, -0.875, 0, -1, 0, 1, 0})},
           t64({10, 30, 30, 20, 40, 10, 10, 0}, {1, 1, 1, 8}, false), false,
           sampler(M::Nearest, P::Zeros, false)},
          {"nearest, border",
           {t64({10, 20, 30, 40}, {1, 1, 1, 4}), points({1, 0, 3, 0, -4, 0})},
           t64({40, 40, 10}, {1, 1, 1, 3}, false), false,
           sampler(M::Nearest, P::Border, false)},
          {"random, align_corners, zeros",
           {uniform64({1, 2, 3, 4}, -1, 1, 90), grid_off_kinks(1, 2, 3, 3, 4, true, -1, 1, 91)},
           Tensor(), true, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "grid_sample bilinear zeros",
    sampler(M::Bilinear, P::Zeros, false),
    [] {
      std::vector<OpSample> s = random_samples(M::Bilinear, P::Zeros, false, 100);
      for (OpSample& e : random_samples(M::Bilinear, P::Zeros, true, 110)) s.push_back(e);
      return s;
    }});

CVG_REGISTER_OP(OpSpec{
    "grid_sample bilinear border",
    sampler(M::Bilinear, P::Border, false),
    [] {
      std::vector<OpSample> s = random_samples(M::Bilinear, P::Border, false, 120);
      for (OpSample& e : random_samples(M::Bilinear, P::Border, true, 130)) s.push_back(e);
      return s;
    }});

CVG_REGISTER_OP(OpSpec{
    "grid_sample bilinear reflection",
    sampler(M::Bilinear, P::Reflection, false),
    [] {
      std::vector<OpSample> s = random_samples(M::Bilinear, P::Reflection, false, 140);
      for (OpSample& e : random_samples(M::Bilinear, P::Reflection, true, 150)) s.push_back(e);
      return s;
    }});

CVG_REGISTER_OP(OpSpec{
    "grid_sample nearest",
    sampler(M::Nearest, P::Zeros, false),
    [] {
      std::vector<OpSample> s = random_samples(M::Nearest, P::Zeros, false, 160);
      for (OpSample& e : random_samples(M::Nearest, P::Reflection, true, 170)) s.push_back(e);
      return s;
    }});

CVG_REGISTER_OP(OpSpec{
    "grid_sample_backward_input",
    [](const TensorList& xs) {
      return grid_sample_backward_input(xs[0], xs[1], {2, 3, 5, 6}, M::Bilinear, P::Zeros, false);
    },
    [] {
      // A single sample pixel: its gradient lands on its 4 taps with the bilinear weights.
      // Pixel (1.25, 0.5) of a 2 x 4 plane (align_corners): weights 0.375 0.125 / 0.375 0.125.
      return std::vector<OpSample>{
          {"hand: one point spreads over its 4 taps",
           {t64({8}, {1, 1, 1, 1}), points({-1.0 / 6.0, 0})},
           t64({0, 3, 1, 0, 0, 3, 1, 0}, {1, 1, 2, 4}, false), false,
           [](const TensorList& xs) {
             return grid_sample_backward_input(xs[0], xs[1], {1, 1, 2, 4}, M::Bilinear,
                                               P::Zeros, true);
           }},
          {"zeros", {uniform64({2, 3, 4, 3}, -1, 1, 200),
                     grid_off_kinks(2, 4, 3, 5, 6, false, -2, 2, 201)}, Tensor(), true, nullptr},
          {"reflection, align_corners",
           {uniform64({2, 3, 4, 3}, -1, 1, 202), grid_off_kinks(2, 4, 3, 5, 6, true, -5, 5, 203)},
           Tensor(), true, [](const TensorList& xs) {
             return grid_sample_backward_input(xs[0], xs[1], {2, 3, 5, 6}, M::Bilinear,
                                               P::Reflection, true);
           }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "grid_sample_backward_grid",
    [](const TensorList& xs) {
      return grid_sample_backward_grid(xs[0], xs[1], xs[2], M::Bilinear, P::Border, false);
    },
    [] {
      return std::vector<OpSample>{
          {"border", {uniform64({2, 3, 4, 3}, -1, 1, 210), uniform64({2, 3, 5, 6}, -1, 1, 211),
                      grid_off_kinks(2, 4, 3, 5, 6, false, -2, 2, 212)}, Tensor(), true, nullptr},
          {"zeros, align_corners",
           {uniform64({1, 2, 3, 4}, -1, 1, 213), uniform64({1, 2, 4, 5}, -1, 1, 214),
            grid_off_kinks(1, 3, 4, 4, 5, true, -2, 2, 215)},
           Tensor(), true, [](const TensorList& xs) {
             return grid_sample_backward_grid(xs[0], xs[1], xs[2], M::Bilinear, P::Zeros, true);
           }}};
    }});

// ---------------------------------------------------------------------------------------------
// affine_grid

CVG_REGISTER_OP(OpSpec{
    "affine_grid",
    [](const TensorList& xs) { return affine_grid(xs[0], {2, 3, 4, 5}, false); },
    [] {
      const Tensor id = t64({1, 0, 0, 0, 1, 0}, {1, 2, 3});
      // Base points: align_corners x in {-1, 0, 1}, y in {-1, 1}; otherwise the pixel centres
      // x in {-2/3, 0, 2/3}, y in {-1/2, 1/2}.
      const double t = 2.0 / 3.0;
      return std::vector<OpSample>{
          {"hand identity, align_corners", {id},
           t64({-1, -1, 0, -1, 1, -1, -1, 1, 0, 1, 1, 1}, {1, 2, 3, 2}, false), false,
           [](const TensorList& xs) { return affine_grid(xs[0], {1, 7, 2, 3}, true); }},
          {"hand identity", {id},
           t64({-t, -0.5, 0, -0.5, t, -0.5, -t, 0.5, 0, 0.5, t, 0.5}, {1, 2, 3, 2}, false), false,
           [](const TensorList& xs) { return affine_grid(xs[0], {1, 7, 2, 3}, false); }},
          // x' = 2 y + 0.5, y' = -x: rows (-1, -1, 1) -> (-1.5, 1) etc.
          {"hand rotation and shift, align_corners", {t64({0, 2, 0.5, -1, 0, 0}, {1, 2, 3})},
           t64({-1.5, 1, -1.5, 0, -1.5, -1, 2.5, 1, 2.5, 0, 2.5, -1}, {1, 2, 3, 2}, false), false,
           [](const TensorList& xs) { return affine_grid(xs[0], {1, 1, 2, 3}, true); }},
          {"random theta", {uniform64({2, 2, 3}, -1, 1, 300)}, Tensor(), true, nullptr},
          {"1 x 1 output", {uniform64({1, 2, 3}, -1, 1, 301)}, Tensor(), true,
           [](const TensorList& xs) { return affine_grid(xs[0], {1, 1, 1, 1}, true); }}};
    }});

// ---------------------------------------------------------------------------------------------
// flow_warp

CVG_REGISTER_OP(OpSpec{
    "flow_warp",
    [](const TensorList& xs) { return flow_warp(xs[0], xs[1]); },
    [] {
      // Flows with fractional parts away from the integers (whole pixels plus 0.1 .. 0.4 or
      // 0.6 .. 0.9), some reaching outside the image.
      auto flow = [](const Shape& shape, double range, uint64_t seed) {
        std::vector<double> v = uniform64(shape, -range, range, seed, false).to_vector<double>();
        for (double& e : v) e = off_kinks(e);
        return t64(v, shape);
      };
      // One row 1 2 4: flow 0.5 reads halfway to the right neighbour, -1 the left one, and the
      // last pixel's right neighbour is outside (zeros).
      return std::vector<OpSample>{
          {"hand half-pixel and whole-pixel flow",
           {t64({1, 2, 4}, {1, 1, 1, 3}), t64({0.5, -1, 0.5, 0, 0, 0}, {1, 2, 1, 3}, false)},
           t64({1.5, 1, 2}, {1, 1, 1, 3}, false), false, nullptr},
          {"2x3x5x4", {uniform64({2, 3, 5, 4}, -1, 1, 400), flow({2, 2, 5, 4}, 2.5, 401)},
           Tensor(), true, nullptr},
          {"1x1x1x6 (H = 1)", {uniform64({1, 1, 1, 6}, -1, 1, 402), flow({1, 2, 1, 6}, 1.5, 403)},
           Tensor(), true, nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// interpolate

CVG_REGISTER_OP(OpSpec{
    "interpolate",
    [](const TensorList& xs) { return interpolate(xs[0], {3, 3}); },
    [] {
      const Tensor x22 = t64({1, 2, 3, 4}, {1, 1, 2, 2});
      const Tensor x13 = t64({1, 2, 4}, {1, 1, 1, 3});
      return std::vector<OpSample>{
          // Nearest 2 -> 3: floor(o * 2/3) = 0, 0, 1.
          {"hand nearest 2x2 -> 3x3", {x22},
           t64({1, 1, 2, 1, 1, 2, 3, 3, 4}, {1, 1, 3, 3}, false), false, nullptr},
          // scale_factor 2: out = 2 in, o >> 1.
          {"hand nearest scale_factor 2", {x22},
           t64({1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, {1, 1, 4, 4}, false), false,
           [](const TensorList& xs) { return interpolate(xs[0], 2.0); }},
          // Bilinear 2 -> 3 without align_corners: sources max(0, (o + 0.5) 2/3 - 0.5) =
          // 0, 0.5, 7/6 (the top tap clamps to 1).
          {"hand bilinear 2x2 -> 3x3", {x22},
           t64({1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4}, {1, 1, 3, 3}, false), false,
           [](const TensorList& xs) { return interpolate(xs[0], {3, 3}, InterpMode::Bilinear); }},
          // 1 x 3 -> 1 x 2: align_corners reads 0 and 2; otherwise 0.25 and 1.75.
          {"hand bilinear 3 -> 2, align_corners", {x13}, t64({1, 4}, {1, 1, 1, 2}, false), false,
           [](const TensorList& xs) {
             return interpolate(xs[0], {1, 2}, InterpMode::Bilinear, true);
           }},
          {"hand bilinear 3 -> 2", {x13}, t64({1.25, 3.5}, {1, 1, 1, 2}, false), false,
           [](const TensorList& xs) { return interpolate(xs[0], {1, 2}, InterpMode::Bilinear); }},
          {"nearest 2x3x5x4 -> 7x3", {uniform64({2, 3, 5, 4}, -1, 1, 500)}, Tensor(), true,
           [](const TensorList& xs) { return interpolate(xs[0], {7, 3}); }},
          {"bilinear 2x2x4x5 -> 6x3", {uniform64({2, 2, 4, 5}, -1, 1, 501)}, Tensor(), true,
           [](const TensorList& xs) { return interpolate(xs[0], {6, 3}, InterpMode::Bilinear); }},
          {"bilinear align_corners scale 1.5", {uniform64({1, 2, 4, 3}, -1, 1, 502)}, Tensor(),
           true, [](const TensorList& xs) {
             return interpolate(xs[0], 1.5, InterpMode::Bilinear, true);
           }}};
    }});

// ---------------------------------------------------------------------------------------------
// Plain tests

TEST_CASE("grid_sample(affine_grid(identity)) is the input, both align_corners",
          "[ops][sample]") {
  const Tensor x = uniform64({2, 3, 5, 7}, -1, 1, 600, false);
  const Tensor id = expand(t64({1, 0, 0, 0, 1, 0}, {1, 2, 3}, false), {2, 2, 3});
  for (bool align : {false, true}) {
    INFO("align_corners " << align);
    const Tensor grid = affine_grid(id, x.shape(), align);
    for (M mode : {M::Bilinear, M::Nearest})
      for (P pad : {P::Zeros, P::Border, P::Reflection})
        CHECK(max_abs_diff(grid_sample(x, grid, mode, pad, align), x) < 1e-12);
  }
}

TEST_CASE("grid_sample: nearest has zero grid gradient, bilinear's matches finite differences "
          "through padding", "[ops][sample]") {
  const Tensor x = uniform64({1, 2, 4, 5}, -1, 1, 610, false);
  const Tensor grid = grid_off_kinks(1, 3, 3, 4, 5, false, -1, 1, 611);
  const Tensor y = grid_sample(x, grid, M::Nearest);
  const Tensor g = grad({sum(y)}, {grid})[0];
  CHECK(max_abs_diff(g, zeros_like(g)) == 0.0);
  // Border clamps coordinates beyond the image: no gradient there.
  const Tensor far = t64({5, 0.1, -5, 0.3}, {1, 1, 2, 2});
  const Tensor gb = grad({sum(grid_sample(x, far, M::Bilinear, P::Border))}, {far})[0];
  const std::vector<double> v = gb.to_vector<double>();
  CHECK(v[0] == 0.0);
  CHECK(v[2] == 0.0);
  CHECK(v[1] != 0.0);
}

TEST_CASE("grid_sample: second derivatives in the grid exist and are exact", "[ops][sample]") {
  // d^2 / dx dy of a bilinear sample is the mixed difference of the 4 taps times the scales.
  // Plane 1 2 3 4 / 5 6 7 8, align_corners: px = 1.5 (x + 1), py = (y + 1) / 2.
  const Tensor x = plane24();
  Tensor grid = points({-0.5, 0.2});  // pixel (0.75, 0.6): taps x[0..1][0..1]
  grid.set_requires_grad(true);
  const Tensor y = grid_sample(x.detach(), grid, M::Bilinear, P::Zeros, true);
  const Tensor g = grad({sum(y)}, {grid}, {}, {.create_graph = true})[0];
  // dy/dpx = (1 - fy)(2 - 1) + fy (6 - 5) = 1, times 1.5; dy/dpy = 4, times 0.5.
  CHECK(std::fabs(g.to_vector<double>()[0] - 1.5) < 1e-12);
  CHECK(std::fabs(g.to_vector<double>()[1] - 2.0) < 1e-12);
  // Mixed derivative: (x11 - x10 - x01 + x00) * 1.5 * 0.5 = 0; pure ones: 0.
  const Tensor h = grad({select(reshape(g, {-1}), 0, 0)}, {grid})[0];
  CHECK(max_abs_diff(h, zeros_like(h)) < 1e-12);
  // On a plane with curvature the mixed term is (9 - 5 - 2 + 1) * 0.75 = 2.25.
  const Tensor x2 = t64({1, 2, 3, 4, 5, 9, 7, 8}, {1, 1, 2, 4}, false);
  const Tensor g2 = grad({sum(grid_sample(x2, grid, M::Bilinear, P::Zeros, true))}, {grid}, {},
                         {.create_graph = true})[0];
  const Tensor h2 = grad({select(reshape(g2, {-1}), 0, 0)}, {grid})[0];
  CHECK(std::fabs(h2.to_vector<double>()[0]) < 1e-12);
  CHECK(std::fabs(h2.to_vector<double>()[1] - 2.25) < 1e-12);
}

#ifdef _OPENMP
TEST_CASE("grid_sample: the input gradient does not depend on the thread count",
          "[ops][sample]") {
  // 32 planes of 2000 outputs: three threads split them into three chunks, one thread not.
  const Tensor x = uniform64({2, 16, 9, 11}, -1, 1, 620);
  const Tensor grid = uniform64({2, 40, 50, 2}, -1.1, 1.1, 621, false);
  const Tensor gout = uniform64({2, 16, 40, 50}, -1, 1, 622, false);
  auto input_grad = [&] {
    return grad({grid_sample(x, grid)}, {x}, {gout})[0].to_vector<double>();
  };
  const auto [one, three] = at_one_and_three_threads(input_grad);
  CHECK(one == three);
}
#endif

TEST_CASE("flow_warp: zero flow is the image, integer flow is a shift with zeros", "[ops][sample]") {
  const Tensor img = uniform64({2, 3, 4, 5}, -1, 1, 630, false);
  CHECK(max_abs_diff(flow_warp(img, zeros({2, 2, 4, 5}, img.options())), img) == 0.0);
  // flow (+2, -1): out[y, x] = img[y - 1, x + 2], zero where that is outside.
  Tensor flow = zeros({2, 2, 4, 5}, img.options());
  select(flow, 1, 0).fill_(2.0);
  select(flow, 1, 1).fill_(-1.0);
  const std::vector<double> out = flow_warp(img, flow).to_vector<double>();
  const std::vector<double> in = img.to_vector<double>();
  for (int64_t p = 0; p < 6; ++p)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 5; ++x) {
        const int64_t sy = y - 1, sx = x + 2;
        const bool inside = sy >= 0 && sx < 5;
        INFO("plane " << p << " y " << y << " x " << x);
        CHECK(out[(p * 4 + y) * 5 + x] == (inside ? in[(p * 4 + sy) * 5 + sx] : 0.0));
      }
}

TEST_CASE("interpolate matches PyTorch's index formulas on odd sizes", "[ops][sample]") {
  const Tensor x = uniform64({1, 2, 5, 7}, -1, 1, 640, false);
  const std::vector<double> xv = x.to_vector<double>();
  auto at = [&](int64_t c, int64_t i, int64_t j) { return xv[(c * 5 + i) * 7 + j]; };
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{3, 11}, {8, 4}, {5, 7}, {13, 2}}) {
    INFO("output " << oh << " x " << ow);
    // nearest: floor(o * (float) in / out), clamped.
    const std::vector<double> n = interpolate(x, {oh, ow}).to_vector<double>();
    auto nidx = [](int64_t o, int64_t in, int64_t out) {
      if (out == in) return o;
      if (out == 2 * in) return o / 2;
      const float s = static_cast<float>(in) / static_cast<float>(out);
      return std::min<int64_t>(static_cast<int64_t>(std::floor(o * s)), in - 1);
    };
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j)
          CHECK(n[(c * oh + i) * ow + j] == at(c, nidx(i, 5, oh), nidx(j, 7, ow)));
    for (bool align : {false, true}) {
      INFO("bilinear align_corners " << align);
      const std::vector<double> b =
          interpolate(x, {oh, ow}, InterpMode::Bilinear, align).to_vector<double>();
      // PyTorch's upsample_bilinear2d: source, lower tap, upper tap clamped, lambda.
      auto src = [&](int64_t o, int64_t in, int64_t out) {
        if (align) return out > 1 ? o * double(in - 1) / double(out - 1) : 0.0;
        const double s = double(in) / double(out) * (o + 0.5) - 0.5;
        return s < 0 ? 0.0 : s;
      };
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            const double sy = src(i, 5, oh), sx = src(j, 7, ow);
            const int64_t y0 = static_cast<int64_t>(sy), x0 = static_cast<int64_t>(sx);
            const int64_t y1 = y0 + (y0 < 4 ? 1 : 0), x1 = x0 + (x0 < 6 ? 1 : 0);
            const double ly = sy - y0, lx = sx - x0;
            const double ref = (1 - ly) * ((1 - lx) * at(c, y0, x0) + lx * at(c, y0, x1)) +
                               ly * ((1 - lx) * at(c, y1, x0) + lx * at(c, y1, x1));
            CHECK(std::fabs(b[(c * oh + i) * ow + j] - ref) < 1e-12);
          }
    }
  }
  // scale_factor: floor(in * s) outputs and 1 / s as the index scale.
  CHECK(interpolate(x, 0.5).shape() == Shape({1, 2, 2, 3}));
  CHECK(interpolate(x, 1.5, InterpMode::Bilinear).shape() == Shape({1, 2, 7, 10}));
}

TEST_CASE("grid_sample family: bad arguments are errors naming the op and the values",
          "[ops][sample]") {
  const Tensor x = zeros({2, 3, 4, 5});
  const Tensor grid = zeros({2, 6, 7, 2});
  CHECK_THAT(error_of([&] { grid_sample(x, zeros({2, 6, 7, 3})); }),
             Contains("grid_sample: grid must be N x Ho x Wo x 2, got shape [2, 6, 7, 3]"));
  CHECK_THAT(error_of([&] { grid_sample(x, zeros({1, 6, 7, 2})); }),
             Contains("grid_sample: grid has batch size 1"));
  CHECK_THAT(error_of([&] { grid_sample(zeros({3, 4, 5}), grid); }),
             Contains("grid_sample: input must be N x C x H x W, got shape [3, 4, 5]"));
  CHECK_THAT(error_of([&] { grid_sample(x, grid.to(DType::float64)); }),
             Contains("grid_sample: input and grid must have the same dtype, got float32 and "
                      "float64"));
  CHECK_THAT(error_of([&] { grid_sample(x, grid.to(DType::int32)); }),
             Contains("grid_sample: grid must be float32 or float64, got int32"));
  CHECK_THAT(error_of([&] { grid_sample(zeros({2, 3, 0, 5}), grid); }),
             Contains("grid_sample: input must have a non-empty H x W plane, got shape "
                      "[2, 3, 0, 5]"));
  CHECK_THAT(error_of([&] {
               grid_sample_backward_input(zeros({2, 3, 6, 6}), grid, {2, 3, 4, 5});
             }),
             Contains("grid_sample_backward_input: grad_out has shape [2, 3, 6, 6]"));
  CHECK_THAT(error_of([&] { affine_grid(zeros({2, 3, 3}), {2, 1, 4, 4}); }),
             Contains("affine_grid: theta must be N x 2 x 3, got shape [2, 3, 3]"));
  CHECK_THAT(error_of([&] { affine_grid(zeros({2, 2, 3}), {3, 1, 4, 4}); }),
             Contains("affine_grid: size [3, 1, 4, 4] has batch size 3 but theta has 2"));
  CHECK_THAT(error_of([&] { flow_warp(x, zeros({2, 2, 4, 4})); }),
             Contains("flow_warp: flow must be N x 2 x H x W = [2, 2, 4, 5]"));
  CHECK_THAT(error_of([&] { interpolate(x, {0, 3}); }),
             Contains("interpolate: output size must be positive, got [0, 3]"));
  CHECK_THAT(error_of([&] { interpolate(x, -2.0); }),
             Contains("interpolate: scale_factor must be positive and finite, got -2"));
  CHECK_THAT(error_of([&] { interpolate(x, {3, 3}, InterpMode::Nearest, true); }),
             Contains("interpolate: align_corners applies to bilinear mode only"));
}

TEST_CASE("grid_sample: empty grids and channels give empty outputs and zero gradients",
          "[ops][sample]") {
  Tensor x = uniform64({2, 3, 4, 5}, -1, 1, 650);
  const Tensor y = grid_sample(x, zeros({2, 0, 3, 2}, x.options()));
  CHECK(y.shape() == Shape({2, 3, 0, 3}));
  const Tensor g = grad({y}, {x}, {zeros(y.shape(), y.options())})[0];
  CHECK(max_abs_diff(g, zeros_like(x)) == 0.0);
  CHECK(grid_sample(zeros({2, 0, 4, 5}), zeros({2, 3, 3, 2})).shape() == Shape({2, 0, 3, 3}));
}

TEST_CASE("grid_sample: non-finite grid values sample zero, huge ones are padded", "[ops][sample]") {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = t64({1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4}, false);
  const Tensor bad = points({inf, 0, -inf, 0, nan, 0, 0, nan});
  for (P pad : {P::Zeros, P::Border, P::Reflection}) {
    INFO("padding " << static_cast<int>(pad));
    CHECK(grid_sample(x, bad, M::Bilinear, pad).to_vector<double>() ==
          std::vector<double>(4, 0.0));
    CHECK(grid_sample(x, bad, M::Nearest, pad).to_vector<double>() ==
          std::vector<double>(4, 0.0));
  }
  // 1e300 is far right: zeros reads nothing, border the right column (y = 0: rows averaged).
  const Tensor far = points({1e300, 0, -1e300, 0});
  CHECK(grid_sample(x, far).to_vector<double>() == std::vector<double>{0, 0});
  CHECK(grid_sample(x, far, M::Bilinear, P::Border).to_vector<double>() ==
        std::vector<double>{6, 3});
  const std::vector<double> r = grid_sample(x, far, M::Bilinear, P::Reflection).to_vector<double>();
  for (double v : r) CHECK((v >= 1 && v <= 8));
}

// The CPU forward (sample_cpu.cpp) computes taps with axis_taps_zeros for Zeros padding and sums
// them in blocks with blends instead of branches. Both must give exactly what the shared
// per-pixel code gives (axis_taps, sample_pixel: what the CUDA kernels run).
TEMPLATE_TEST_CASE("grid_sample CPU: branch-free taps equal axis_taps", "[ops][sample]", float,
                   double) {
  using T = TestType;
  const T inf = std::numeric_limits<T>::infinity();
  std::vector<T> values = {T(0), T(-1), T(1), T(0.5), T(-0.5), T(1.5), T(-1.5), T(1e30),
                           T(-1e30), inf, -inf, std::numeric_limits<T>::quiet_NaN()};
  for (int i = -3000; i <= 3000; ++i) values.push_back(static_cast<T>(i) / T(997));
  // Exact ties of the nearest rounding: pixel coordinates k + 0.5 for align_corners (x = -1 +
  // (2k + 1) / (size - 1)).
  for (int k = -2; k < 12; ++k) values.push_back(T(-1) + T(2 * k + 1) / T(9));
  for (int64_t size : {1, 2, 5, 10}) {
    for (bool align : {false, true}) {
      const SampleAxis a = normalized_axis(size, align);
      for (GridSampleMode mode : {GridSampleMode::Bilinear, GridSampleMode::Nearest}) {
        for (T v : values) {
          INFO("size " << size << " align " << align << " nearest "
                       << (mode == GridSampleMode::Nearest) << " g " << v);
          const AxisTaps<T> want = axis_taps(v, a, mode, GridPadding::Zeros, 0);
          const AxisTaps<T> got = axis_taps_zeros(v, a, mode);
          for (int k = 0; k < 2; ++k) {
            CHECK(got.in[k] == want.in[k]);
            if (want.in[k]) {
              CHECK(got.i0 == want.i0);
              CHECK(got.w[k] == want.w[k]);
            }
          }
        }
      }
    }
  }
}

// The geometry of grid_sample(x, grid) (kernels/sample.cpp's make_geometry) for an input of
// shape `in` and a contiguous grid, to run the per-pixel code of sample_math.h as a reference.
SampleGeometry reference_geometry(const Shape& in, const Tensor& grid, GridSampleMode mode,
                                  GridPadding pad, bool align) {
  SampleGeometry g;
  g.n = in[0]; g.c = in[1]; g.h = in[2]; g.w = in[3];
  g.ho = grid.shape()[1]; g.wo = grid.shape()[2];
  g.grid_stride[0] = g.ho * g.wo * 2; g.grid_stride[1] = g.wo * 2; g.grid_stride[2] = 2;
  g.grid_stride[3] = 1;
  g.x = normalized_axis(g.w, align);
  g.y = normalized_axis(g.h, align);
  g.mode = mode;
  g.padding = pad;
  return g;
}

// grid_sample(x, grid) computed pixel by pixel with sample_pixel (sample_math.h: what the CUDA
// kernel runs), the reference of the CPU loops. grid: N x Ho x Wo x 2, contiguous.
template <typename T>
std::vector<T> sample_pixel_reference(const Tensor& x, const Tensor& grid, GridSampleMode mode,
                                      GridPadding pad, bool align) {
  const SampleGeometry g = reference_geometry(x.shape(), grid, mode, pad, align);
  std::vector<T> out(static_cast<size_t>(g.n * g.c * g.ho * g.wo));
  for (int64_t l = 0; l < g.n * g.out_plane(); ++l)
    sample_pixel(x.data<T>(), grid.data<T>(), g, l, out.data());
  return out;
}

TEMPLATE_TEST_CASE("grid_sample CPU: blocked forward equals sample_pixel", "[ops][sample]", float,
                   double) {
  using T = TestType;
  const DType dt = dtype_of<T>();
  manual_seed(7);
  // 3 images of 2 x 7 x 9 sampled at 11 x 13 points: 143 pixels per image, so the blocks of 64
  // pixels end inside rows and images; a chunked run (several threads) starts mid-image too.
  const int64_t N = 3, C = 2, H = 7, W = 9, Ho = 11, Wo = 13;
  Tensor x = randn({N, C, H, W}, TensorOptions{}.with_dtype(dt));
  {
    // Non-finite input values next to the image edge: read by some samples and stand-in
    // addresses of skipped taps for others; only the former may see them.
    T* px = x.data<T>();
    px[0] = std::numeric_limits<T>::infinity();
    px[W - 1] = std::numeric_limits<T>::quiet_NaN();
  }
  Tensor grid = randn({N, Ho, Wo, 2}, TensorOptions{}.with_dtype(dt)) * 0.8;
  {
    T* pg = grid.data<T>();
    pg[6] = std::numeric_limits<T>::quiet_NaN();
    pg[11] = std::numeric_limits<T>::infinity();
    pg[20] = T(-1);  // exactly on the left edge
  }
  for (GridSampleMode mode : {GridSampleMode::Bilinear, GridSampleMode::Nearest}) {
    for (GridPadding pad : {GridPadding::Zeros, GridPadding::Border, GridPadding::Reflection}) {
      for (bool align : {false, true}) {
        const std::vector<T> want = sample_pixel_reference<T>(x, grid, mode, pad, align);
        const std::vector<T> got = grid_sample(x, grid, mode, pad, align).template to_vector<T>();
        REQUIRE(got.size() == want.size());
        int64_t differ = 0;
        for (size_t i = 0; i < got.size(); ++i)
          if (!(got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i])))) ++differ;
        INFO("mode " << static_cast<int>(mode) << " padding " << static_cast<int>(pad)
                     << " align " << align);
        CHECK(differ == 0);
      }
    }
  }
}

#ifdef _OPENMP
// The float32 kernels with Zeros padding have paths of their own (sample_cpu.cpp: the taps of
// blocks of 128 pixels in vectorised loops, 8 pixels per instruction with AVX2). They must give
// the per-pixel code's bits everywhere: rows of Wo = 47 (not a multiple of the vector width),
// images of 2867 pixels (not a multiple of the block), chunks of several threads that start
// mid-image (pixels) or mid-batch-entry (the input gradient's planes: 9 planes of 3 channels in
// chunks of 5), and grid values that hit the special points: exact pixel centres (integers)
// and exact halves (nearest's ties, which round to even), points on and beyond the edges, far
// away, and non-finite. With H = 4 and W = 8 (align_corners false) px = 4 x + 3.5 and
// py = 2 y + 1.5, so the grid values below are exact in float.
struct ZerosPathInputs {
  Tensor x, grid, go;
};

ZerosPathInputs zeros_path_inputs() {
  const int64_t N = 3, C = 3, H = 4, W = 8, Ho = 61, Wo = 47;
  manual_seed(11);
  ZerosPathInputs in;
  in.x = randn({N, C, H, W});
  in.x.data<float>()[5] = -0.0f;  // nearest reads it as +0 (0 + v), as tap_sum does
  in.go = randn({N, C, Ho, Wo});
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> specials = {
      -0.875f, 0.125f, 1.125f,          // px = 0, 4, 8: pixel centres, the last beyond the edge
      -0.75f, -0.25f, 0.0f, 0.25f,      // px = 0.5, 2.5, 3.5, 4.5 (ties: 0, 2, 4, 4)
      -1.0f, 1.0f, -1.125f, 0.875f,     // px = -0.5, 7.5, -1, 7: the edges and just around
      -1.25f, 1.25f, 3.0f, -3.0f,       // further out
      1e30f, -1e30f, 1e38f, inf, -inf, std::numeric_limits<float>::quiet_NaN()};
  const std::vector<float> noise = uniform64({N * Ho * Wo * 2}, -1.3, 1.3, 12, false)
                                       .to(DType::float32)
                                       .to_vector<float>();
  std::vector<float> values(noise.size());
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = i % 3 == 0 ? noise[i] : specials[(i * 7 + i / 5) % specials.size()];
  in.grid = from_vector<float>(values, {N, Ho, Wo, 2});
  return in;
}

// The same grid as a strided view (x and y planes apart), which the same paths read.
Tensor strided_copy(const Tensor& grid) {
  const Tensor s = permute(permute(grid, {0, 1, 3, 2}).contiguous(), {0, 1, 3, 2});
  REQUIRE(!s.is_contiguous());
  return s;
}

// How many elements of got differ from want in their bits.
int64_t bit_differences(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  int64_t d = 0;
  for (size_t i = 0; i < want.size(); ++i)
    d += std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i]);
  return d;
}

TEST_CASE("grid_sample CPU: the float32 zeros path equals sample_pixel at 1 and 3 threads",
          "[ops][sample][grid_sample]") {
  const ZerosPathInputs in = zeros_path_inputs();
  for (GridSampleMode mode : {GridSampleMode::Bilinear, GridSampleMode::Nearest}) {
    for (bool align : {false, true}) {
      INFO("nearest " << (mode == GridSampleMode::Nearest) << " align " << align);
      const std::vector<float> want =
          sample_pixel_reference<float>(in.x, in.grid, mode, GridPadding::Zeros, align);
      for (const Tensor& gr : {in.grid, strided_copy(in.grid)}) {
        const auto [one, three] = at_one_and_three_threads([&] {
          return grid_sample(in.x, gr, mode, GridPadding::Zeros, align).to_vector<float>();
        });
        CHECK(bit_differences(one, want) == 0);
        CHECK(bit_differences(three, want) == 0);
      }
    }
  }
}

TEST_CASE("grid_sample CPU: the float32 zeros gradients equal the per-pixel code at 1 and 3 "
          "threads", "[ops][sample][grid_sample]") {
  const ZerosPathInputs in = zeros_path_inputs();
  const Shape& xs = in.x.shape();
  const float* go = in.go.data<float>();
  for (GridSampleMode mode : {GridSampleMode::Bilinear, GridSampleMode::Nearest}) {
    for (bool align : {false, true}) {
      INFO("nearest " << (mode == GridSampleMode::Nearest) << " align " << align);
      const SampleGeometry g = reference_geometry(xs, in.grid, mode, GridPadding::Zeros, align);
      const int64_t op = g.out_plane(), ip = g.in_plane();
      // Input gradient: tap_scatter of every output pixel in increasing order, per plane.
      std::vector<float> want_input(static_cast<size_t>(g.n * g.c * ip), 0.0f);
      for (int64_t n = 0; n < g.n; ++n)
        for (int64_t p = 0; p < op; ++p) {
          AxisTaps<float> tx, ty;
          pixel_taps(in.grid.data<float>(), g, n, p / g.wo, p % g.wo, 0, 0, &tx, &ty);
          for (int64_t c = 0; c < g.c; ++c)
            tap_scatter(want_input.data() + (n * g.c + c) * ip, g.w, tx, ty,
                        go[(n * g.c + c) * op + p]);
        }
      // Grid gradient (bilinear; nearest's is zero without a kernel).
      std::vector<float> want_grid(static_cast<size_t>(g.n * op * 2));
      for (int64_t l = 0; l < g.n * op; ++l)
        grid_grad_pixel(go, in.x.data<float>(), in.grid.data<float>(), g, l, want_grid.data());
      for (const Tensor& gr : {in.grid, strided_copy(in.grid)}) {
        const auto [one, three] = at_one_and_three_threads([&] {
          return grid_sample_backward_input(in.go, gr, xs, mode, GridPadding::Zeros, align)
              .to_vector<float>();
        });
        CHECK(bit_differences(one, want_input) == 0);
        CHECK(bit_differences(three, want_input) == 0);
        if (mode == GridSampleMode::Bilinear) {
          const auto [one_g, three_g] = at_one_and_three_threads([&] {
            return grid_sample_backward_grid(in.go, in.x, gr, mode, GridPadding::Zeros, align)
                .to_vector<float>();
          });
          CHECK(bit_differences(one_g, want_grid) == 0);
          CHECK(bit_differences(three_g, want_grid) == 0);
        }
      }
    }
  }
}
#endif
