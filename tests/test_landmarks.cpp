// models/landmarks: the chapter-4 losses against their O(n^2) definitions and by gradcheck,
// the warp-pair generator's geometry, the linear regressor and the metric.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/sample.h"
#include "kernels/spatial.h"
#include "kernels/tps.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "models/landmarks/detector.h"
#include "models/landmarks/losses.h"
#include "models/landmarks/objective.h"
#include "models/landmarks/regressor.h"
#include "models/landmarks/warps.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::landmarks;

namespace {

const TensorOptions f64 = TensorOptions{}.with_dtype(DType::float64);

Tensor random_maps(int64_t n, int64_t k, int64_t h, int64_t w, double sharpness = 1.0) {
  return spatial_softmax(randn({n, k, h, w}, f64) * sharpness);
}

// A grid G(v) = v + smooth offset, in output pixels.
Tensor random_grid(int64_t n, int64_t h, int64_t w) {
  std::vector<double> g;
  const std::vector<double> r = randn({n, 6}, f64).to_vector<double>();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) {
        const double* q = &r[static_cast<size_t>(b * 6)];
        g.push_back(j + 0.3 * q[0] + 0.05 * q[1] * i + 0.02 * q[2] * i * j);
        g.push_back(i + 0.3 * q[3] + 0.05 * q[4] * j - 0.02 * q[5] * j * j);
      }
  return from_vector(g, {n, h, w, 2}, f64);
}

// Eq. 6 by its definition, a double sum over position pairs.
double equivariance_by_definition(const Tensor& p, const Tensor& p2, const Tensor& grid) {
  const int64_t n = p.size(0), k = p.size(1), h = p.size(2), w = p.size(3);
  const auto a = p.contiguous().to_vector<double>(), b = p2.contiguous().to_vector<double>(),
             g = grid.contiguous().to_vector<double>();
  double total = 0;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t r = 0; r < k; ++r)
      for (int64_t u = 0; u < h * w; ++u)
        for (int64_t v = 0; v < h * w; ++v) {
          const double dx = static_cast<double>(u % w) - g[(s * h * w + v) * 2];
          const double dy = static_cast<double>(u / w) - g[(s * h * w + v) * 2 + 1];
          total += (dx * dx + dy * dy) * a[(s * k + r) * h * w + u] * b[(s * k + r) * h * w + v];
        }
  return total / static_cast<double>(n * k);
}

// Eq. 8 with m x m cells by its definition.
double diversity_by_definition(const Tensor& p, int64_t m) {
  const int64_t n = p.size(0), k = p.size(1), h = p.size(2), w = p.size(3);
  const auto a = p.contiguous().to_vector<double>();
  double total = 0;
  for (int64_t s = 0; s < n; ++s) {
    double covered = 0;
    for (int64_t ci = 0; ci < h / m; ++ci)
      for (int64_t cj = 0; cj < w / m; ++cj) {
        double best = 0;
        for (int64_t r = 0; r < k; ++r) {
          double mass = 0;
          for (int64_t di = 0; di < m; ++di)
            for (int64_t dj = 0; dj < m; ++dj)
              mass += a[((s * k + r) * h + ci * m + di) * w + cj * m + dj];
          best = std::max(best, mass);
        }
        covered += best;
      }
    total += static_cast<double>(k) - covered;
  }
  return total / static_cast<double>(n);
}

}  // namespace

TEST_CASE("landmarks: equivariance loss equals its O(n^2) definition", "[landmarks]") {
  manual_seed(11);
  const Tensor p = random_maps(2, 3, 4, 5), p2 = random_maps(2, 3, 4, 5);
  const Tensor g = random_grid(2, 4, 5);
  CHECK(equivariance_loss(p, p2, g).item() ==
        Approx(equivariance_by_definition(p, p2, g)).epsilon(1e-10));
}

TEST_CASE("landmarks: equivariance loss is zero exactly for corresponding deltas", "[landmarks]") {
  // Landmark 0 at (x, y) = (2, 1) in x; x2 puts it at pixel (0, 3), whose G is (2, 1).
  Tensor g = random_grid(1, 4, 4);
  std::vector<double> gv = g.contiguous().to_vector<double>();
  gv[(3 * 4 + 0) * 2] = 2.0;
  gv[(3 * 4 + 0) * 2 + 1] = 1.0;
  g = from_vector(gv, {1, 4, 4, 2}, f64);
  std::vector<double> a(16, 0.0), b(16, 0.0);
  a[1 * 4 + 2] = 1;
  b[3 * 4 + 0] = 1;
  const Tensor p = from_vector(a, {1, 1, 4, 4}, f64), p2 = from_vector(b, {1, 1, 4, 4}, f64);
  CHECK(equivariance_loss(p, p2, g).item() == Approx(0).margin(1e-12));
  // Moving x's delta one pixel costs exactly 1 (squared distance).
  std::fill(a.begin(), a.end(), 0.0);
  a[1 * 4 + 3] = 1;
  CHECK(equivariance_loss(from_vector(a, {1, 1, 4, 4}, f64), p2, g).item() == Approx(1.0));
}

TEST_CASE("landmarks: diversity loss equals its definition; K - 1 for identical uniform maps",
          "[landmarks]") {
  manual_seed(12);
  const Tensor p = random_maps(2, 4, 6, 4, 3.0);
  for (int64_t m : {1, 2}) CHECK(diversity_loss(p, m).item() == Approx(diversity_by_definition(p, m)));
  const Tensor uniform = full({1, 5, 4, 4}, 1.0 / 16, f64);
  CHECK(diversity_loss(uniform, 2).item() == Approx(4.0));
  // Deltas in different cells: no overlap, no loss.
  std::vector<double> a(2 * 16, 0.0);
  a[0] = 1;            // landmark 0 at (0, 0)
  a[16 + 15] = 1;      // landmark 1 at (3, 3)
  CHECK(diversity_loss(from_vector(a, {1, 2, 4, 4}, f64), 2).item() == Approx(0).margin(1e-12));
  CHECK_THAT(testing::error_of([&] { diversity_loss(uniform, 3); }),
             Catch::Contains("multiples of the cell size m = 3"));
}

TEST_CASE("landmarks: gradcheck of the losses through the spatial softmax", "[landmarks]") {
  manual_seed(13);
  const Tensor logits = randn({2, 2, 4, 4}, f64).set_requires_grad(true);
  const Tensor logits2 = randn({2, 2, 4, 4}, f64).set_requires_grad(true);
  const Tensor g = random_grid(2, 4, 4);
  auto eq = [&](const TensorList& in) {
    return equivariance_loss(spatial_softmax(in[0]), spatial_softmax(in[1]), g);
  };
  const GradcheckResult r1 = gradcheck(eq, {logits, logits2});
  INFO(r1.message);
  CHECK(r1.ok);
  const GradcheckResult r1b = gradgradcheck(eq, {logits, logits2});
  INFO(r1b.message);
  CHECK(r1b.ok);
  // Diversity: the max over landmarks has kinks at ties; random logits keep them apart.
  auto div = [&](const TensorList& in) { return diversity_loss(spatial_softmax(in[0]), 2); };
  const GradcheckResult r2 = gradcheck(div, {logits});
  INFO(r2.message);
  CHECK(r2.ok);
  // Alignment: also differentiable in the grid's sample position (bilinear, away from the
  // pixel centres where it has kinks: expected positions of random maps are not integers).
  auto align = [&](const TensorList& in) {
    return alignment_loss(spatial_softmax(in[0]), spatial_softmax(in[1]), g);
  };
  const GradcheckResult r3 = gradcheck(align, {logits, logits2});
  INFO(r3.message);
  CHECK(r3.ok);
}

TEST_CASE("landmarks: alignment loss and equivariance error agree with a direct computation",
          "[landmarks]") {
  manual_seed(14);
  // An affine grid is reproduced exactly by bilinear interpolation.
  const int64_t h = 5, w = 6;
  std::vector<double> gv;
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      gv.push_back(0.9 * j + 0.1 * i + 0.3);
      gv.push_back(-0.2 * j + 1.1 * i - 0.4);
    }
  const Tensor g = from_vector(gv, {1, h, w, 2}, f64);
  const Tensor p = random_maps(1, 3, h, w, 2.0), p2 = random_maps(1, 3, h, w, 2.0);
  const auto a = expected_position(p2).to_vector<double>(), b = expected_position(p).to_vector<double>();
  double sq = 0, dist = 0;
  for (int r = 0; r < 3; ++r) {
    const double gx = 0.9 * a[2 * r] + 0.1 * a[2 * r + 1] + 0.3;
    const double gy = -0.2 * a[2 * r] + 1.1 * a[2 * r + 1] - 0.4;
    const double d2 = (gx - b[2 * r]) * (gx - b[2 * r]) + (gy - b[2 * r + 1]) * (gy - b[2 * r + 1]);
    sq += d2;
    dist += std::sqrt(d2);
  }
  CHECK(alignment_loss(p, p2, g).item() == Approx(sq / 3));
  CHECK(equivariance_error(p, p2, g) == Approx(dist / 3));
  // The per-landmark errors behind it: landmark r's own distance.
  const std::vector<double> per = equivariance_errors(p, p2, g).to_vector<double>();
  REQUIRE(per.size() == 3);
  const double gx0 = 0.9 * a[0] + 0.1 * a[1] + 0.3, gy0 = -0.2 * a[0] + 1.1 * a[1] - 0.4;
  CHECK(per[0] == Approx(std::hypot(gx0 - b[0], gy0 - b[1])));
}

TEST_CASE("landmarks: map_spread of a delta, two points and a uniform map", "[landmarks]") {
  // A delta: 0. Half the mass on each of two pixels 4 apart in a row: variance 4 in x, spread 2.
  // A uniform 24 x 24 map: Var = (24^2 - 1) / 12 per axis.
  std::vector<double> v(3 * 24 * 24, 0.0);
  v[5 * 24 + 7] = 1;
  v[576 + 3 * 24 + 2] = 0.5;
  v[576 + 3 * 24 + 6] = 0.5;
  for (int i = 0; i < 576; ++i) v[1152 + i] = 1.0 / 576;
  const std::vector<double> s = map_spread(from_vector(v, {1, 3, 24, 24}, f64)).to_vector<double>();
  CHECK(s[0] == Approx(0).margin(1e-12));
  CHECK(s[1] == Approx(2));
  CHECK(s[2] == Approx(std::sqrt(2 * (24.0 * 24 - 1) / 12)));
}

TEST_CASE("landmarks: warp_grid equals tps_grid_weights", "[landmarks]") {
  manual_seed(19);
  const Tensor params = random_tps_params(3, WarpOptions{}, 2.0, kCPU).to(DType::float64);
  const Tensor ours = warp_grid(params, 9, 10);
  const Tensor ref = tps_grid_weights(tps_control_points(10, f64), params, {9, 9}, false);
  CHECK(amax(abs(ours - ref)).item() < 1e-12);
}

TEST_CASE("landmarks: warps at strength 0 are the identity", "[landmarks]") {
  manual_seed(15);
  const Tensor params = random_tps_params(2, WarpOptions{}, 0.0, kCPU);
  const Tensor grid = warp_grid(params, 12, 10);
  const Tensor ident = affine_grid(tensor({1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0}, {2, 2, 3}),
                                   {2, 1, 12, 12}, false);
  CHECK(amax(abs(grid - ident)).item() < 1e-5);
  // Output-pixel grid of the identity: G(v) = v.
  const Tensor g = grid_to_output_pixels(grid_to_cropped_pixels(grid, 12, 2));
  REQUIRE(g.shape() == Shape{2, 4, 4, 2});
  const auto gv = g.contiguous().to_vector<float>();
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      CHECK(gv[(i * 4 + j) * 2] == Approx(j).margin(1e-4));
      CHECK(gv[(i * 4 + j) * 2 + 1] == Approx(i).margin(1e-4));
    }
}

TEST_CASE("landmarks: the triplet grid maps x2's pixels to where they came from in x",
          "[landmarks]") {
  manual_seed(16);
  // A smooth image (a linear ramp in each channel) is sampled exactly by bilinear
  // interpolation, so x2(v) must equal x(G(v)) wherever G(v) stays inside x.
  const int64_t s = 40, crop = 6, out = s - 2 * crop;
  std::vector<float> img;
  for (int c = 0; c < 2; ++c)
    for (int64_t i = 0; i < s; ++i)
      for (int64_t j = 0; j < s; ++j) img.push_back(c == 0 ? 0.02f * j : 0.02f * i);
  const Tensor images = expand(from_vector(img, {1, 2, s, s}), {3, 2, s, s}).contiguous();
  const Triplet t = make_triplets(images, crop, WarpOptions{});
  REQUIRE(t.x.shape() == Shape{3, 2, out, out});
  REQUIRE(t.grid.shape() == Shape{3, out / 2, out / 2, 2});
  // Channel 0 of x is 0.02 * (source column), channel 1 0.02 * (source row), for the crop's
  // pixel u the source is x's pixel u itself mapped by g1; x2 at output pixel v (input pixel
  // 2v + 0.5, i.e. the mean of a 2 x 2 block) must read the x value at G(v) (input pixels
  // 2 G + 0.5).
  const auto x = t.x.contiguous().to_vector<float>(), x2 = t.x2.contiguous().to_vector<float>(),
             g = t.grid.contiguous().to_vector<float>();
  int64_t checked = 0;
  double worst = 0;
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t i = 0; i < out / 2; ++i)
      for (int64_t j = 0; j < out / 2; ++j) {
        const double gx = 2 * g[((b * out / 2 + i) * out / 2 + j) * 2] + 0.5;
        const double gy = 2 * g[((b * out / 2 + i) * out / 2 + j) * 2 + 1] + 0.5;
        if (gx < 1 || gy < 1 || gx > out - 2 || gy > out - 2) continue;
        for (int c = 0; c < 2; ++c) {
          auto at = [&](const std::vector<float>& im, int64_t r, int64_t q) {
            return static_cast<double>(im[((b * 2 + c) * out + r) * out + q]);
          };
          // x at the continuous point (gx, gy), bilinearly.
          const int64_t x0 = static_cast<int64_t>(std::floor(gx)), y0 = static_cast<int64_t>(std::floor(gy));
          const double fx = gx - x0, fy = gy - y0;
          const double xv = (1 - fy) * ((1 - fx) * at(x, y0, x0) + fx * at(x, y0, x0 + 1)) +
                            fy * ((1 - fx) * at(x, y0 + 1, x0) + fx * at(x, y0 + 1, x0 + 1));
          // x2 at output pixel v: mean of its 2 x 2 input block.
          const double yv = 0.25 * (at(x2, 2 * i, 2 * j) + at(x2, 2 * i, 2 * j + 1) +
                                    at(x2, 2 * i + 1, 2 * j) + at(x2, 2 * i + 1, 2 * j + 1));
          worst = std::max(worst, std::abs(xv - yv));
          ++checked;
        }
      }
  CHECK(checked > 100);
  // In units of source pixels (the ramps rise 0.02 per pixel): well under a tenth of a pixel.
  CHECK(worst / 0.02 < 0.1);
}

TEST_CASE("landmarks: warp_points inverts the sampling grid", "[landmarks]") {
  manual_seed(20);
  const int64_t s = 40, crop = 6;
  const Tensor g = warp_grid(random_tps_params(2, WarpOptions{}, 1.0, kCPU), s, 10);
  const Tensor px = grid_to_cropped_pixels(g, s, crop).to(DType::float64);  // 2 x 28 x 28 x 2
  // Source points near the middle, where their preimages stay inside the warped crop.
  const Tensor q = rand({2, 5, 2}, f64) * 10.0 + 9.0;
  const Tensor p = warp_points(px, q);
  // Interpolating the grid at p must give q back (to Newton's tolerance).
  const auto pv = p.to_vector<double>(), qv = q.to_vector<double>(), gv = px.contiguous().to_vector<double>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t k = 0; k < 5; ++k) {
      const double x = pv[(b * 5 + k) * 2], y = pv[(b * 5 + k) * 2 + 1];
      const int64_t j0 = static_cast<int64_t>(x), i0 = static_cast<int64_t>(y);
      const double fx = x - j0, fy = y - i0;
      for (int c = 0; c < 2; ++c) {
        auto at = [&](int64_t i, int64_t j) { return gv[((b * 28 + i) * 28 + j) * 2 + c]; };
        const double v = (1 - fy) * ((1 - fx) * at(i0, j0) + fx * at(i0, j0 + 1)) +
                         fy * ((1 - fx) * at(i0 + 1, j0) + fx * at(i0 + 1, j0 + 1));
        CHECK(v == Approx(qv[(b * 5 + k) * 2 + c]).margin(1e-6));
      }
    }
}

TEST_CASE("landmarks: the regressor recovers a linear map; IOD error by hand", "[landmarks]") {
  manual_seed(17);
  const Tensor w_true = randn({6, 4}, f64);
  const Tensor det = randn({40, 3, 2}, f64) * 10.0;
  const Tensor pts = apply_regressor(w_true, det);
  REQUIRE(pts.shape() == Shape{40, 2, 2});
  const Tensor w = fit_linear_regressor(det, pts, 1e-10);
  CHECK(amax(abs(w - w_true)).item() < 1e-6);
  // One labelled image: the fit interpolates it.
  const Tensor w1 = fit_linear_regressor(narrow(det, 0, 0, 1), narrow(pts, 0, 0, 1), 1e-8);
  CHECK(amax(abs(apply_regressor(w1, narrow(det, 0, 0, 1)) - narrow(pts, 0, 0, 1))).item() < 1e-4);

  // Eyes 10 px apart; the two predicted points are off by 1 and by 3 px: (0.1 + 0.3) / 2.
  const Tensor truth = tensor({0, 0, 10, 0}, {1, 2, 2}, f64);
  const Tensor pred = tensor({1, 0, 10, 3}, {1, 2, 2}, f64);
  CHECK(iod_error(pred, truth, 0, 1) == Approx(0.2));
  CHECK(iod_error(truth, truth, 0, 1) == 0);
  CHECK_THAT(testing::error_of([&] { iod_error(pred, truth, 0, 0); }), Catch::Contains("eye indices"));
  const Tensor shape = mean_shape(tensor({0, 0, 2, 2, 4, 0, 6, 2}, {2, 2, 2}, f64));
  CHECK(shape.to_vector<double>() == std::vector<double>{2, 0, 4, 2});
}

TEST_CASE("landmarks: detector shapes and one training step", "[landmarks]") {
  manual_seed(18);
  Detector det(DetectorOptions{.landmarks = 4, .in_channels = 3, .width = 0.25});
  const Tensor logits = det.forward(rand({2, 3, 16, 16}));
  CHECK(logits.shape() == Shape{2, 4, 8, 8});
  CHECK_THAT(testing::error_of([&] { det.forward(rand({2, 1, 16, 16})); }),
             Catch::Contains("Detector: expected N x 3 x H x W"));
  ObjectiveOptions opt;
  opt.crop = 2;
  const ObjectiveParts parts = training_objective(det, rand({2, 3, 20, 20}), opt);
  CHECK(parts.p.shape() == Shape{2, 4, 8, 8});
  CHECK(std::isfinite(parts.total.item()));
  CHECK(parts.total.item() == Approx(parts.equivariance.item() + parts.diversity.item()));
  parts.total.backward();
  for (const Tensor& w : det.parameters()) {
    REQUIRE(w.grad().defined());
    CHECK(std::isfinite(sum(abs(w.grad())).item()));
  }
}
