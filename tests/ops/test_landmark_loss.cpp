// Tests of the fused landmark losses (kernels/landmark_loss.h): registry entries (hand cases,
// float64 gradcheck, float32 agreement and the [cuda] parity column), equality with the unfused
// composition of models/landmarks/losses.h (values and both gradients, several shapes, cell
// sizes and smooth random grids), the diversity tie rule, errors, and the documented failure
// of a second derivative through the fused backward.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/landmark_loss.h"
#include "kernels/reduce.h"
#include "kernels/spatial.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "models/landmarks/losses.h"
#include "models/landmarks/objective.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

const TensorOptions kF64 = TensorOptions{}.with_dtype(DType::float64);

// A smooth random grid N x h x w x 2 in output pixels: an affine map near the identity plus a
// gentle sinusoidal bend, like the app's TPS warps (no grad).
Tensor smooth_grid(int64_t n, int64_t h, int64_t w, uint64_t seed) {
  manual_seed(seed);
  const std::vector<double> c = rand({n, 8}, kF64).to_vector<double>();
  std::vector<double> v(n * h * w * 2);
  for (int64_t b = 0; b < n; ++b) {
    const double* cb = c.data() + 8 * b;
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) {
        double* g = v.data() + ((b * h + i) * w + j) * 2;
        g[0] = 2 * cb[0] - 1 + (0.9 + 0.2 * cb[1]) * j + 0.2 * (cb[2] - 0.5) * i +
               0.6 * std::sin(0.5 * i + 0.3 * j + 6 * cb[3]);
        g[1] = 2 * cb[4] - 1 + 0.2 * (cb[5] - 0.5) * j + (0.9 + 0.2 * cb[6]) * i +
               0.6 * std::cos(0.4 * j - 0.2 * i + 6 * cb[7]);
      }
  }
  return from_vector(v, {n, h, w, 2}, kF64);
}

// Random logits N x K x h x w: standard normal times `scale` (larger = more peaked maps).
Tensor logits64(const Shape& shape, double scale, uint64_t seed, bool grad = true) {
  manual_seed(seed);
  Tensor x = (randn(shape, kF64) * scale).detach();
  if (grad) x.set_requires_grad(true);
  return x;
}

// 1 x K x h x w logits that are 0 except `peak` at one pixel per landmark.
Tensor peaks(int64_t K, int64_t h, int64_t w, const std::vector<std::pair<int64_t, int64_t>>& at,
             double peak) {
  std::vector<double> v(K * h * w, 0.0);
  for (int64_t k = 0; k < K; ++k) v[(k * h + at[k].first) * w + at[k].second] = peak;
  return t64(v, {1, K, h, w});
}

Tensor unfused_equivariance(const Tensor& x, const Tensor& x2, const Tensor& grid) {
  return landmarks::equivariance_loss(spatial_softmax(x), spatial_softmax(x2), grid);
}
Tensor unfused_diversity(const Tensor& x, int64_t m) {
  return landmarks::diversity_loss(spatial_softmax(x), m);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Registry entries: hand cases, gradcheck (first order only: the fused ops are differentiable
// once), float32 agreement and, with a GPU, the CUDA kernels of forward and backward.

CVG_REGISTER_OP(OpSpec{
    "landmark_equivariance_loss",
    [](const TensorList& xs) { return landmark_equivariance_loss(xs[0], xs[1], xs[2]); },
    [] {
      return std::vector<OpSample>{
          // Two uniform 1 x 2 maps: p = p2 = (1/2, 1/2) at u = (0, 0), (1, 0) and G = (0, 0),
          // (3, 4). Var_p = 1/4, Var_p2 = |(3, 4)|^2 / 4 = 25/4, m = (1/2, 0), m2 = (3/2, 2),
          // |m - m2|^2 = 1 + 4: 1/4 + 25/4 + 5 = 11.5.
          {"hand uniform 1x2 maps",
           {t64({0, 0}, {1, 1, 1, 2}), t64({0, 0}, {1, 1, 1, 2}),
            t64({0, 0, 3, 4}, {1, 1, 2, 2}, false)},
           t64({11.5}, {}, false),
           true,
           nullptr},
          // Deltas (logit 60) at corresponding positions: G maps v = (j, i) to (j + 1, i), and
          // landmark k of the second map sits one column left of landmark k of the first. The
          // leaked mass is e^-60 per pixel, so the loss is 0 to far below 1e-12.
          {"hand deltas at corresponding positions",
           {peaks(2, 3, 4, {{0, 3}, {2, 1}}, 60.0), peaks(2, 3, 4, {{0, 2}, {2, 0}}, 60.0),
            [] {
              std::vector<double> g;
              for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 4; ++j) {
                  g.push_back(j + 1.0);
                  g.push_back(i);
                }
              return t64(g, {1, 3, 4, 2}, false);
            }()},
           t64({0.0}, {}, false),
           false,
           nullptr},
          {"2x3x5x4 random", {logits64({2, 3, 5, 4}, 1.0, 1), logits64({2, 3, 5, 4}, 1.0, 2),
                              smooth_grid(2, 5, 4, 3)}, Tensor(), true, nullptr},
          {"1x2x6x7 peaked", {logits64({1, 2, 6, 7}, 3.0, 4), logits64({1, 2, 6, 7}, 3.0, 5),
                              smooth_grid(1, 6, 7, 6)}, Tensor(), true, nullptr},
          // Non-contiguous logits (a transposed view) go through contiguous().
          {"transposed logits",
           {logits64({2, 2, 5, 3}, 1.0, 7), logits64({2, 2, 3, 5}, 1.0, 8), smooth_grid(2, 3, 5, 9)},
           Tensor(),
           true,
           [](const TensorList& xs) {
             return landmark_equivariance_loss(transpose(xs[0], 2, 3), xs[1], xs[2]);
           }}};
    },
    /*gradgrad=*/false,
    /*differentiable=*/true,
    /*f32_tol=*/1e-4,
    /*cuda_tol=*/1e-3});

CVG_REGISTER_OP(OpSpec{
    "landmark_diversity_loss",
    [](const TensorList& xs) { return landmark_diversity_loss(xs[0], 2); },
    [] {
      auto with_m = [](int64_t m) -> OpFn {
        return [m](const TensorList& xs) { return landmark_diversity_loss(xs[0], m); };
      };
      return std::vector<OpSample>{
          // Three identical uniform maps: every cell is a three-way tie of mass 4/32, the first
          // landmark takes all 8 cells, sum = 1, loss K - 1 = 2.
          {"hand identical uniform maps (K - 1)", {t64(std::vector<double>(3 * 4 * 8, 0.0), {1, 3, 4, 8})},
           t64({2.0}, {}, false), false, nullptr},
          // Two deltas in different 2 x 2 cells: each cell holds one landmark's mass, loss 0.
          {"hand deltas in separate cells", {peaks(2, 4, 4, {{0, 0}, {3, 2}}, 60.0)},
           t64({0.0}, {}, false), false, nullptr},
          {"2x3x4x6 m=2", {logits64({2, 3, 4, 6}, 2.0, 11)}, Tensor(), true, nullptr},
          {"1x4x6x6 m=3", {logits64({1, 4, 6, 6}, 2.0, 12)}, Tensor(), true, with_m(3)},
          {"2x2x3x5 m=1", {logits64({2, 2, 3, 5}, 2.0, 13)}, Tensor(), true, with_m(1)},
          {"3x2x4x4 m=4 (one cell)", {logits64({3, 2, 4, 4}, 2.0, 14)}, Tensor(), true, with_m(4)}};
    },
    /*gradgrad=*/false,
    /*differentiable=*/true,
    /*f32_tol=*/1e-4,
    /*cuda_tol=*/1e-3});

// ---------------------------------------------------------------------------------------------
// Fused == unfused: values and gradients w.r.t. both logits, in float64.

TEST_CASE("landmark_equivariance_loss equals the unfused composition, values and gradients",
          "[ops][landmark_loss]") {
  struct Case {
    int64_t n, k, h, w;
    double scale;
  };
  uint64_t seed = 100;
  for (const Case c : {Case{1, 1, 1, 1, 1.0}, Case{2, 3, 5, 4, 1.0}, Case{3, 2, 7, 9, 3.0},
                       Case{4, 10, 12, 12, 2.0}, Case{2, 5, 6, 11, 0.3}, Case{1, 3, 1, 8, 2.0}}) {
    INFO("N " << c.n << " K " << c.k << " h " << c.h << " w " << c.w << " scale " << c.scale);
    const Tensor x = logits64({c.n, c.k, c.h, c.w}, c.scale, ++seed);
    const Tensor x2 = logits64({c.n, c.k, c.h, c.w}, c.scale, ++seed);
    const Tensor grid = smooth_grid(c.n, c.h, c.w, ++seed);
    const Tensor fused = landmark_equivariance_loss(x, x2, grid);
    const Tensor ref = unfused_equivariance(x, x2, grid);
    REQUIRE(fused.shape() == ref.shape());
    CHECK(allclose(fused, ref, 1e-11, 1e-11));
    const Tensor g = scalar_tensor(0.7, kF64);
    const TensorList gf = grad({fused}, {x, x2}, {g});
    const TensorList gr = grad({ref}, {x, x2}, {g});
    for (size_t i = 0; i < 2; ++i) {
      INFO("gradient w.r.t. " << (i == 0 ? "logits" : "logits2") << ", max diff "
                              << max_abs_diff(gf[i], gr[i]));
      CHECK(allclose(gf[i], gr[i], 1e-9, 1e-12));
    }
  }
}

TEST_CASE("landmark_diversity_loss equals the unfused composition, values and gradients",
          "[ops][landmark_loss]") {
  struct Case {
    int64_t n, k, h, w, m;
    double scale;
  };
  uint64_t seed = 200;
  for (const Case c : {Case{1, 1, 2, 2, 2, 1.0}, Case{2, 3, 4, 6, 2, 2.0}, Case{3, 5, 6, 9, 3, 3.0},
                       Case{2, 10, 12, 12, 2, 2.0}, Case{1, 4, 5, 7, 1, 1.0},
                       Case{2, 3, 8, 4, 4, 0.5}}) {
    INFO("N " << c.n << " K " << c.k << " h " << c.h << " w " << c.w << " m " << c.m);
    const Tensor x = logits64({c.n, c.k, c.h, c.w}, c.scale, ++seed);
    const Tensor fused = landmark_diversity_loss(x, c.m);
    const Tensor ref = unfused_diversity(x, c.m);
    REQUIRE(fused.shape() == ref.shape());
    CHECK(allclose(fused, ref, 1e-12, 1e-12));
    const Tensor g = scalar_tensor(-1.3, kF64);
    const Tensor gf = grad({fused}, {x}, {g})[0];
    const Tensor gr = grad({ref}, {x}, {g})[0];
    INFO("max diff " << max_abs_diff(gf, gr));
    CHECK(allclose(gf, gr, 1e-9, 1e-13));
  }
}

TEST_CASE("fused landmark losses inside the app's objective: same total and gradient",
          "[ops][landmark_loss]") {
  // The app's use: both halves narrowed from one detector output, eq + gamma (div + div2).
  const int64_t n = 3, k = 4, h = 6, w = 8, m = 2;
  const double gamma = 0.5;
  const Tensor both = logits64({2 * n, k, h, w}, 2.0, 300);
  const Tensor grid = smooth_grid(n, h, w, 301);
  const Tensor x = narrow(both, 0, 0, n), x2 = narrow(both, 0, n, n);
  const Tensor fused = landmark_equivariance_loss(x, x2, grid) +
                       (landmark_diversity_loss(x, m) + landmark_diversity_loss(x2, m)) * gamma;
  const Tensor p = spatial_softmax(both);
  const Tensor p1 = narrow(p, 0, 0, n), p2 = narrow(p, 0, n, n);
  const Tensor ref = landmarks::equivariance_loss(p1, p2, grid) +
                     (landmarks::diversity_loss(p1, m) + landmarks::diversity_loss(p2, m)) * gamma;
  CHECK(allclose(fused, ref, 1e-11, 1e-11));
  const Tensor gf = grad({fused}, {both})[0], gr = grad({ref}, {both})[0];
  INFO("max diff " << max_abs_diff(gf, gr));
  CHECK(allclose(gf, gr, 1e-9, 1e-12));
}

TEST_CASE("landmark_equivariance_loss: gradient for only one of the two logits",
          "[ops][landmark_loss]") {
  const Tensor x = logits64({2, 3, 4, 5}, 1.0, 400);
  const Tensor x2 = logits64({2, 3, 4, 5}, 1.0, 401, /*grad=*/false);
  const Tensor grid = smooth_grid(2, 4, 5, 402);
  const Tensor gf = grad({landmark_equivariance_loss(x, x2, grid)}, {x})[0];
  const Tensor gr = grad({unfused_equivariance(x, x2, grid)}, {x})[0];
  CHECK(allclose(gf, gr, 1e-9, 1e-12));
}

TEST_CASE("landmark_equivariance_loss is shift invariant in the logits and ~0 for matching deltas",
          "[ops][landmark_loss]") {
  NoGradGuard no_grad;
  const Tensor x = logits64({2, 3, 5, 6}, 1.5, 500, false);
  const Tensor x2 = logits64({2, 3, 5, 6}, 1.5, 501, false);
  const Tensor grid = smooth_grid(2, 5, 6, 502);
  // Adding a constant per plane (here a large one) leaves the softmax, so the loss, unchanged.
  CHECK(std::abs(landmark_equivariance_loss(x + 1000.0, x2 - 700.0, grid).item() -
                 landmark_equivariance_loss(x, x2, grid).item()) < 1e-10);
  // Deltas that do not correspond cost their squared distance: (3, 0) vs G = (0 + 1, 0).
  const Tensor a = peaks(1, 2, 4, {{0, 3}}, 80.0), b = peaks(1, 2, 4, {{0, 0}}, 80.0);
  std::vector<double> g;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      g.push_back(j + 1.0);
      g.push_back(i);
    }
  CHECK(landmark_equivariance_loss(a, b, t64(g, {1, 2, 4, 2}, false)).item() ==
        Approx(4.0).margin(1e-12));
}

// ---------------------------------------------------------------------------------------------
// Diversity tie rule: a tie in a cell goes to the first landmark.

TEST_CASE("landmark_diversity_loss: a tied cell is won by the first landmark",
          "[ops][landmark_loss]") {
  // K = 2 maps of 2 x 6, m = 2: one row of three cells. Logits 0 or -inf, so every exp is 1 or
  // 0 and every sum exact: landmark 0 is uniform over cells 0 and 1, landmark 1 over cells 0
  // and 2. P_0 = (1/2, 1/2, 0), P_1 = (1/2, 0, 1/2): cell 0 is an exact tie.
  const double ninf = -std::numeric_limits<double>::infinity();
  const int on[2][3] = {{1, 1, 0}, {1, 0, 1}};
  std::vector<double> v;
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 6; ++j) v.push_back(on[r][j / 2] ? 0.0 : ninf);
  const Tensor x = t64(v, {1, 2, 2, 6});
  const Tensor loss = landmark_diversity_loss(x, 2);
  CHECK(loss.item() == 2.0 - 1.5);
  // The tie goes to landmark 0: winners (0, 0, 1), won masses W = (1, 1/2), and
  // dz_r(u) = -p_r(u) (win - W_r) with p = 1/8 on the landmark's cells (g = 1, N = 1). Had the
  // tie gone to landmark 1, both landmarks' cell-0 gradients would be -1/16 and +1/16 instead.
  const std::vector<double> got = grad({loss}, {x})[0].to_vector<double>();
  const int win[2][3] = {{1, 1, 0}, {0, 0, 1}};
  const double W[2] = {1.0, 0.5};
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 6; ++j) {
        const double p = on[r][j / 2] ? 0.125 : 0.0;
        INFO("r " << r << " i " << i << " j " << j);
        CHECK(got[(r * 2 + i) * 6 + j] == -p * (win[r][j / 2] - W[r]));
      }
}

// ---------------------------------------------------------------------------------------------
// Second derivatives are refused with the documented message; first-order create_graph works.

TEST_CASE("fused landmark losses: create_graph gives the gradient, a second derivative fails",
          "[ops][landmark_loss]") {
  const Tensor x = logits64({2, 2, 4, 4}, 1.0, 600);
  const Tensor x2 = logits64({2, 2, 4, 4}, 1.0, 601);
  const Tensor grid = smooth_grid(2, 4, 4, 602);
  SECTION("equivariance") {
    const TensorList g = grad({landmark_equivariance_loss(x, x2, grid)}, {x, x2}, {}, {.create_graph = true});
    const Tensor gr = grad({unfused_equivariance(x, x2, grid)}, {x})[0];
    CHECK(allclose(g[0], gr, 1e-9, 1e-12));
    REQUIRE(g[0].requires_grad());
    const std::string msg = error_of([&] { grad({sum(g[0] * g[0])}, {x}); });
    CHECK_THAT(msg, Contains("landmark_equivariance_loss_backward") &&
                        Contains("differentiable once") &&
                        Contains("models/landmarks/losses.h"));
  }
  SECTION("diversity") {
    const Tensor g = grad({landmark_diversity_loss(x, 2)}, {x}, {}, {.create_graph = true})[0];
    REQUIRE(g.requires_grad());
    const std::string msg = error_of([&] { sum(g * x).backward(); });
    CHECK_THAT(msg, Contains("landmark_diversity_loss_backward") &&
                        Contains("differentiable once"));
  }
}

// ---------------------------------------------------------------------------------------------
// Errors name the op, the argument and the offending values.

TEST_CASE("fused landmark losses: errors", "[ops][landmark_loss][errors]") {
  const Tensor x = logits64({2, 3, 4, 6}, 1.0, 700);
  const Tensor x2 = logits64({2, 3, 4, 6}, 1.0, 701);
  const Tensor grid = smooth_grid(2, 4, 6, 702);
  CHECK_THAT(error_of([&] { landmark_equivariance_loss(x, logits64({2, 3, 6, 4}, 1, 1), grid); }),
             Contains("landmark_equivariance_loss: logits and logits2 must have the same shape") &&
                 Contains("[2, 3, 4, 6]") && Contains("[2, 3, 6, 4]"));
  CHECK_THAT(error_of([&] { landmark_equivariance_loss(x, x2, smooth_grid(2, 6, 4, 1)); }),
             Contains("landmark_equivariance_loss: grid must be N x h x w x 2 = [2, 4, 6, 2]") &&
                 Contains("got [2, 6, 4, 2]"));
  CHECK_THAT(error_of([&] { landmark_equivariance_loss(x, x2.to(DType::float32), grid); }),
             Contains("landmark_equivariance_loss: logits, logits2 and grid must have one dtype") &&
                 Contains("float32"));
  CHECK_THAT(error_of([&] { landmark_equivariance_loss(reshape(x, {6, 4, 6}), x2, grid); }),
             Contains("landmark_equivariance_loss: logits must be N x K x h x w") &&
                 Contains("[6, 4, 6]"));
  CHECK_THAT(error_of([&] {
               landmark_equivariance_loss(x, x2, smooth_grid(2, 4, 6, 1).set_requires_grad(true));
             }),
             Contains("landmark_equivariance_loss: grid requires grad"));
  CHECK_THAT(error_of([&] {
               landmark_diversity_loss(zeros({2, 3, 4, 6}, TensorOptions{}.with_dtype(DType::int32)), 2);
             }),
             Contains("landmark_diversity_loss: logits must be floating point") &&
                 Contains("int32"));
  CHECK_THAT(error_of([&] { landmark_diversity_loss(x, 4); }),
             Contains("landmark_diversity_loss: the maps' h x w = 4x6 must be multiples of the cell "
                      "size m = 4"));
  CHECK_THAT(error_of([&] { landmark_diversity_loss(x, 0); }), Contains("m = 0"));
  CHECK_THAT(error_of([&] { landmark_diversity_loss(zeros({2, 0, 4, 6}, kF64), 2); }),
             Contains("landmark_diversity_loss: logits must not be empty") && Contains("[2, 0, 4, 6]"));
  CHECK_THAT(error_of([&] {
               landmark_diversity_loss_backward(zeros({2}, kF64), x.detach(), 2);
             }),
             Contains("landmark_diversity_loss_backward: grad must hold the one gradient") &&
                 Contains("[2]"));
  CHECK_THAT(error_of([&] {
               landmark_equivariance_loss_backward(scalar_tensor(1.0), x.detach(), x2.detach(), grid);
             }),
             Contains("landmark_equivariance_loss_backward: grad must have the dtype of logits "
                      "(float64), got float32"));
}

// ---------------------------------------------------------------------------------------------
// The app's objective (models/landmarks/objective.h) gives the same total and parameter
// gradients with the fused losses (the default) and with the unfused composition.

TEST_CASE("landmarks objective: fused and unfused losses agree", "[ops][landmark_loss]") {
  manual_seed(800);
  landmarks::Detector det(
      landmarks::DetectorOptions{.landmarks = 4, .in_channels = 3, .width = 0.25});
  const Tensor images = rand({2, 3, 20, 20});
  auto step = [&](bool fused) {
    landmarks::ObjectiveOptions o;
    o.crop = 2;
    o.fused = fused;
    manual_seed(801);  // the same warps for both
    const landmarks::ObjectiveParts parts = landmarks::training_objective(det, images, o);
    TensorList g = grad({parts.total}, det.parameters());
    g.push_back(parts.total.detach());
    return g;
  };
  const TensorList fused = step(true), unfused = step(false);
  REQUIRE(fused.size() == unfused.size());
  for (size_t i = 0; i < fused.size(); ++i) {
    INFO("tensor " << i << " (the last is the total), max diff "
                   << max_abs_diff(fused[i], unfused[i]));
    CHECK(allclose(fused[i], unfused[i], 1e-4, 1e-6));
  }
}

TEST_CASE("fused landmark losses: a NaN logit makes the loss NaN, as the unfused one",
          "[ops][landmark_loss]") {
  NoGradGuard no_grad;
  std::vector<double> v = logits64({1, 2, 4, 4}, 1.0, 900, false).to_vector<double>();
  v[21] = std::numeric_limits<double>::quiet_NaN();  // landmark 1, pixel (1, 1)
  const Tensor x = t64(v, {1, 2, 4, 4}, false), grid = smooth_grid(1, 4, 4, 901);
  CHECK(std::isnan(landmark_equivariance_loss(x, x, grid).item()));
  CHECK(std::isnan(unfused_equivariance(x, x, grid).item()));
  CHECK(std::isnan(landmark_diversity_loss(x, 2).item()));
  CHECK(std::isnan(unfused_diversity(x, 2).item()));
}
