// The deepmatch app's pieces (models/deepmatch): exact ground truth of the synthetic pairs
// (warps of linear patterns, which bilinear interpolation reproduces exactly), the readout
// (decoding, reciprocal verification, densification), the metrics on hand-made matches, chunked
// Q_0 against one pass, and the HOG-like descriptor's properties.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/deepmatch.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "models/deepmatch/matching.h"
#include "models/deepmatch/model.h"
#include "models/deepmatch/pairs.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::deepmatch;

namespace {

GrayImage linear_image(int64_t h, int64_t w, double a, double bx, double by) {
  GrayImage g;
  g.h = h, g.w = w;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) g.v.push_back(static_cast<float>(a + bx * x + by * y));
  return g;
}

// Bilinear value of a 1 x H x W image at (x, y) inside it.
double bilinear(const Tensor& img, double x, double y) {
  const Tensor t = img.contiguous();
  const int64_t w = t.size(2);
  const float* p = t.data<float>();
  const int64_t x0 = static_cast<int64_t>(std::floor(x)), y0 = static_cast<int64_t>(std::floor(y));
  const int64_t x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, t.size(1) - 1);
  const double ax = x - x0, ay = y - y0;
  return (1 - ay) * ((1 - ax) * p[y0 * w + x0] + ax * p[y0 * w + x1]) +
         ay * ((1 - ax) * p[y1 * w + x0] + ax * p[y1 * w + x1]);
}

SyntheticOptions noiseless() {
  SyntheticOptions o;
  o.max_gain = 0, o.max_bias = 0, o.noise = 0;
  return o;
}

// Fraction of valid frame-0 pixels x (with min_value >= 0: whose 5 x 5 neighbourhood is brighter
// than min_value) whose frame-1 value at the ground
// truth y (bilinear) equals I0(x) within tol.
double consistent_fraction(const Pair& p, double tol, double min_value = -1) {
  const int64_t h = p.img0.size(1), w = p.img0.size(2);
  const float* f = p.flow.data<float>();
  const uint8_t* v = p.valid.data<uint8_t>();
  const float* i0 = p.img0.data<float>();
  int64_t n = 0, ok = 0;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      if (!v[i]) continue;
      bool inside = true;  // the whole 5 x 5 neighbourhood above min_value (sprite interiors)
      for (int64_t dy = -2; dy <= 2 && min_value >= 0; ++dy)
        for (int64_t dx = -2; dx <= 2; ++dx) {
          const int64_t yy = std::clamp<int64_t>(y + dy, 0, h - 1), xx = std::clamp<int64_t>(x + dx, 0, w - 1);
          inside = inside && i0[yy * w + xx] > min_value;
        }
      if (!inside) continue;
      ++n;
      ok += std::abs(bilinear(p.img1, x + f[i], y + f[h * w + i]) - i0[i]) <= tol;
    }
  return n > 0 ? static_cast<double>(ok) / static_cast<double>(n) : 0.0;
}

// Equal elements, -inf included (max_abs_diff would see inf - inf = NaN).
bool same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  for (int64_t i = 0; i < x.numel(); ++i)
    if (x.data<float>()[i] != y.data<float>()[i]) return false;
  return true;
}

}  // namespace

TEST_CASE("deepmatch homographies: inverse and composition", "[deepmatch]") {
  Homography h;
  const double m[9] = {1.1, 0.05, 3, -0.04, 0.95, -2, 1e-3, -5e-4, 1};
  std::copy(m, m + 9, h.m);
  double x, y, bx, by;
  h.apply(10, 20, x, y);
  h.inverse().apply(x, y, bx, by);
  CHECK(bx == Approx(10).margin(1e-9));
  CHECK(by == Approx(20).margin(1e-9));
  Homography shift;
  shift.m[2] = 5, shift.m[5] = -1;
  double cx, cy, sx, sy;
  h.then(shift).apply(10, 20, cx, cy);
  shift.apply(x, y, sx, sy);
  CHECK(cx == Approx(sx).margin(1e-9));
  CHECK(cy == Approx(sy).margin(1e-9));
}

TEST_CASE("deepmatch pairs: the ground truth maps frame 0 onto frame 1 exactly", "[deepmatch]") {
  // A linear photo stays linear under the affine parts of every warp, and bilinear sampling of a
  // linear image is exact: I1(x + flow(x)) = I0(x) at every valid pixel.
  std::vector<GrayImage> photos = {linear_image(300, 400, 0.05, 0.0012, 0.001)};
  SECTION("tps: frame 0 through a thin-plate spline, frame 1 through an affine map") {
    const PairSource src(photos, {}, noiseless());
    for (uint64_t seed : {1u, 2u, 3u}) {
      const Pair p = src.make(PairKind::tps, seed);
      CHECK(consistent_fraction(p, 1e-4) == 1.0);
      // The spline moves the frame: the flow is not one translation.
      const Tensor fx = select(p.flow, 0, 0);
      CHECK(amax(fx).item() - amin(fx).item() > 0.5);
    }
  }
  SECTION("homography: perspective makes frame 1 slightly non-linear") {
    const PairSource src(photos, {}, noiseless());
    const Pair p = src.make(PairKind::homography, 7);
    CHECK(consistent_fraction(p, 2e-3) == 1.0);
    const Tensor fy = select(p.flow, 0, 1);
    CHECK(amax(fy).item() - amin(fy).item() > 0.5);  // not one translation
  }
  SECTION("sprites: each linear sprite moves with its own affine motion") {
    // 28 x 28 sprites with their own ramp (all of it above the alpha threshold) over a black
    // photo: the sprite pixels of frame 0 are the bright ones, and inside a sprite both frames are
    // linear; only sprite borders and pixels occluded in frame 1 may differ.
    std::vector<GrayImage> sprites = {linear_image(28, 28, 0.05, 0.01, 0.005), linear_image(28, 28, 0.45, -0.01, -0.005)};
    const PairSource src({linear_image(300, 400, 0, 0, 0)}, sprites, noiseless());
    for (uint64_t seed : {11u, 12u, 13u}) {
      const Pair p = src.make(PairKind::sprites, seed);
      // The ramps change by >= 0.005 per pixel, so any error of the sprite's motion would leave
      // almost no interior pixel within 1e-4; what fails here is occluded in frame 1 (0.78-0.97
      // of the interiors agree in these three pairs).
      CHECK(consistent_fraction(p, 1e-4, /*min_value=*/0.01) > 0.7);
    }
  }
  SECTION("pairs are a function of (seed, index)") {
    const PairSource src(photos, {linear_image(28, 28, 0.15, 0.02, 0.01)}, SyntheticOptions{});
    const Pair a = src.pair(5, 3), b = src.pair(5, 3), c = src.pair(5, 4);
    CHECK(max_abs_diff(a.img1, b.img1) == 0.0);
    CHECK(max_abs_diff(a.flow, b.flow) == 0.0);
    CHECK(max_abs_diff(a.img0, c.img0) > 0.0);
    CHECK(a.img0.size(1) == 96);
    CHECK(a.img0.size(2) == 128);
  }
}

TEST_CASE("deepmatch metrics on hand-made errors", "[deepmatch]") {
  ErrorStats s;
  for (double e : {0.0, 1.5, 3.0, 7.0, 12.0}) s.add(e);
  CHECK(s.acc(2) == Approx(40));
  CHECK(s.acc(5) == Approx(60));
  CHECK(s.acc(10) == Approx(80));
  CHECK(s.epe() == Approx(23.5 / 5));

  // 1 x 3 flow field: errors 0, 5 (3-4-5 triangle), and an invalid pixel that must not count.
  const Tensor gt = from_vector(std::vector<float>{1, 0, 9, 0, 0, 9}, {2, 1, 3});
  const Tensor flow = from_vector(std::vector<float>{1, 3, 0, 0, 4, 0}, {2, 1, 3});
  const Tensor valid = from_vector(std::vector<uint8_t>{1, 1, 0}, {1, 3}, TensorOptions{}.with_dtype(DType::uint8));
  const ErrorStats d = flow_errors(flow, gt, valid);
  CHECK(d.count == 2);
  CHECK(d.epe() == Approx(2.5));
  CHECK(d.acc(2) == Approx(50));
  CHECK(d.acc(5) == Approx(100));

  // Matches at (0, 0) and (1, 0): flows (1, 0) exact and (0, 1) vs gt (0, 0); one outside.
  std::vector<Match> m = {{0, 0, 1, 0, 1}, {1, 0, 1, 1, 1}, {7, 7, 7, 7, 1}};
  const ErrorStats me = match_errors(m, gt, valid);
  CHECK(me.count == 2);
  CHECK(me.epe() == Approx(0.5));
}

TEST_CASE("deepmatch decoding: argmax per reference point, -inf points left out", "[deepmatch]") {
  DmGeometry geo;
  geo.radius = 1, geo.stride = 8, geo.offset = 4;
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> q(3 * 9, 0.0f);
  q[5] = 2.0f;  // point (0, 0): offset (ky 1, kx 2) -> displacement (+1, 0)
  q[9 + 0] = 0.5f, q[9 + 8] = 0.5f;  // point (0, 1): tie, the first (ky 0, kx 0) wins
  for (int k = 0; k < 9; ++k) q[18 + k] = ninf;  // point (0, 2): no match
  const std::vector<Match> m = decode_matches(from_vector(q, {1, 3, 3, 3}), geo, 100, 100);
  REQUIRE(m.size() == 2);
  CHECK(m[0].x0 == 4);
  CHECK(m[0].y0 == 4);
  CHECK(m[0].x1 == 5);
  CHECK(m[0].y1 == 4);
  CHECK(m[0].score == 2.0f);
  CHECK(m[1].x0 == 12);
  CHECK(m[1].x1 == 11);
  CHECK(m[1].y1 == 3);
}

// S_0 scores targets outside the second image 0, and aggregation can make such a score the
// best: decoding picks among targets inside the image only.
TEST_CASE("deepmatch decoding: targets outside the second image never win", "[deepmatch]") {
  DmGeometry geo;
  geo.radius = 1, geo.stride = 8, geo.offset = 4;
  // 3 x 2 reference points at x0 in {4, 12}, y0 in {4, 12, 20}; offsets -1 .. +1 per axis.
  std::vector<float> q(3 * 2 * 9);
  for (size_t e = 0; e < q.size(); ++e) q[e] = static_cast<float>(e % 9);  // best: (+1, +1)
  const Tensor q0 = from_vector(q, {3, 2, 3, 3});
  // A 13 x 13 second image: x1 = 13 and y1 = 13 lie outside it, so points with x0 = 12 or
  // y0 = 12 take offset 0 on that axis, and the points at y0 = 20 have no target at all.
  const std::vector<Match> m = decode_matches(q0, geo, 13, 13);
  REQUIRE(m.size() == 4);
  CHECK((m[0].x1 == 5 && m[0].y1 == 5 && m[0].score == 8));
  CHECK((m[1].x0 == 12 && m[1].x1 == 12 && m[1].y1 == 5 && m[1].score == 7));
  CHECK((m[2].y0 == 12 && m[2].x1 == 5 && m[2].y1 == 12 && m[2].score == 5));
  CHECK((m[3].x1 == 12 && m[3].y1 == 12 && m[3].score == 4));
  for (const Match& x : m) CHECK((x.x1 >= 0 && x.x1 < 13 && x.y1 >= 0 && x.y1 < 13));
  // Blocks of one reference row give the same matches (the row index carries over blocks).
  const std::vector<Match> rowwise = decode_matches(q0, geo, 13, 13, 1);
  REQUIRE(rowwise.size() == m.size());
  for (size_t i = 0; i < m.size(); ++i)
    CHECK((rowwise[i].x0 == m[i].x0 && rowwise[i].y0 == m[i].y0 && rowwise[i].x1 == m[i].x1 &&
           rowwise[i].y1 == m[i].y1 && rowwise[i].score == m[i].score));
  // A large second image: every point keeps its best offset (blocks of two rows and one).
  const std::vector<Match> all = decode_matches(q0, geo, 100, 100, 2 * 2 * 9 * 4);
  REQUIRE(all.size() == 6);
  CHECK((all[5].x1 == 13 && all[5].y1 == 21 && all[5].score == 8));
}

TEST_CASE("deepmatch reciprocal verification", "[deepmatch]") {
  DmGeometry geo;  // stride 8, offset 4
  const std::vector<Match> forward = {
      {4, 4, 12, 4, 1},    // lands on I1 grid point (12, 4), which matches back to (4, 4): kept
      {12, 4, 21, 5, 1},   // nearest I1 point (20, 4) matches back to (11, 3) = p + (p' - q): kept
      {4, 12, 4, 12, 1},   // (4, 12) matches back to (28, 12): rejected
      {12, 12, 44, 12, 1}  // (44, 12): no backward match there: rejected
  };
  const std::vector<Match> backward = {{12, 4, 4, 4, 1}, {20, 4, 11, 3, 1}, {4, 12, 28, 12, 1}};
  const std::vector<Match> kept = reciprocal(forward, backward, geo, 64, 32);
  REQUIRE(kept.size() == 2);
  CHECK(kept[0].x0 == 4);
  CHECK(kept[1].x0 == 12);
  // Half a cell of disagreement is tolerated, more is not.
  CHECK(reciprocal({{12, 4, 21, 5, 1}}, {{20, 4, 15, 3, 1}}, geo, 64, 32).size() == 1);
  CHECK(reciprocal({{12, 4, 21, 5, 1}}, {{20, 4, 16, 3, 1}}, geo, 64, 32).empty());
}

TEST_CASE("deepmatch densification: best match within the radius, else the nearest", "[deepmatch]") {
  const std::vector<Match> m = {{4, 4, 5, 4, 1}, {12, 4, 12, 6, 2}};
  const Tensor f = densify(m, 24, 40, 8);
  const float* p = f.data<float>();
  const int64_t n = 24 * 40;
  auto at = [&](int64_t x, int64_t y) { return std::pair<float, float>{p[y * 40 + x], p[n + y * 40 + x]}; };
  CHECK(at(8, 4) == std::pair<float, float>{0, 2});   // both in reach: the higher score
  CHECK(at(0, 0) == std::pair<float, float>{1, 0});   // only (4, 4) within 8
  CHECK(at(30, 20) == std::pair<float, float>{0, 2}); // none within 8: the nearest, (12, 4)
  CHECK(at(0, 20) == std::pair<float, float>{1, 0});  // nearest is (4, 4)
  CHECK(amax(abs(densify({}, 4, 5, 8))).item() == 0.0);
}

namespace {

// densify's definition, as it was first written: every pixel scans every match.
std::vector<float> densify_by_scan(const std::vector<Match>& matches, int64_t h, int64_t w,
                                   double radius) {
  std::vector<float> flow(static_cast<size_t>(2 * h * w), 0.0f);
  if (matches.empty()) return flow;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const Match* best = nullptr;
      const Match* nearest = nullptr;
      double best_d2 = std::numeric_limits<double>::infinity();
      for (const Match& m : matches) {
        const double dx = m.x0 - x, dy = m.y0 - y;
        if (std::max(std::abs(dx), std::abs(dy)) <= radius && (!best || m.score > best->score))
          best = &m;
        const double d2 = dx * dx + dy * dy;
        if (d2 < best_d2) best_d2 = d2, nearest = &m;
      }
      const Match* m = best ? best : nearest;
      flow[static_cast<size_t>(y * w + x)] = m->x1 - m->x0;
      flow[static_cast<size_t>(h * w + y * w + x)] = m->y1 - m->y0;
    }
  return flow;
}

}  // namespace

TEST_CASE("deepmatch densification by cells equals scanning every match", "[deepmatch]") {
  manual_seed(11);
  struct Case {
    const char* what;
    int64_t h, w, count;
    double radius;
    bool on_grid;   // positions offset + stride * (i, j), as decode_matches makes them
    int levels;     // distinct scores (few: many ties)
  };
  for (const Case c : {Case{"grid, radius = stride, tied scores", 40, 56, 30, 8, true, 3},
                       Case{"grid, small radius: most pixels take the nearest", 33, 47, 12, 2, true, 2},
                       Case{"scattered, one score", 37, 29, 25, 5, false, 1},
                       Case{"scattered, some far outside the image", 20, 24, 9, 3.5, false, 4},
                       Case{"a single match", 17, 13, 1, 8, false, 1},
                       Case{"radius below one pixel", 19, 23, 40, 0.5, false, 5}}) {
    INFO(c.what);
    const Tensor u = rand({c.count, 5});
    const float* r = u.data<float>();
    std::vector<Match> m;
    for (int64_t k = 0; k < c.count; ++k) {
      const float* v = r + 5 * k;
      Match a;
      if (c.on_grid) {
        a.x0 = 4 + 8 * std::floor(v[0] * 7), a.y0 = 4 + 8 * std::floor(v[1] * 5);
      } else {
        const float spread = k % 3 == 0 && std::string(c.what).find("outside") != std::string::npos
                                 ? 4.0f : 1.0f;
        a.x0 = (v[0] * spread - 0.1f * spread) * c.w, a.y0 = (v[1] * spread - 0.1f * spread) * c.h;
      }
      a.x1 = a.x0 + std::round(20 * v[2] - 10), a.y1 = a.y0 + std::round(20 * v[3] - 10);
      a.score = std::floor(v[4] * c.levels);
      m.push_back(a);
    }
    const Tensor got = densify(m, c.h, c.w, c.radius);
    const std::vector<float> want = densify_by_scan(m, c.h, c.w, c.radius);
    const float* g = got.data<float>();
    int64_t differ = 0;
    for (size_t i = 0; i < want.size(); ++i) differ += g[i] != want[i];
    CHECK(differ == 0);
  }
}

// The second image as tall as the first, shorter (blocks whose rows all lie below it: this
// failed in narrow() before) and taller and narrower.
TEST_CASE("deepmatch chunked Q_0 equals one pass", "[deepmatch]") {
  manual_seed(3);
  DmGeometry geo;
  geo.radius = 5, geo.levels = 2, geo.stride = 4, geo.offset = 2;
  for (const auto& [h1, w1] : {std::pair<int64_t, int64_t>{38, 30}, {14, 30}, {60, 22}}) {
    for (const char* kind : {"hog", "cnn"}) {
      DeepMatchNet net(parse_descriptor(kind), geo);
      NoGradGuard g;
      net.nu.copy_(from_vector(std::vector<float>{1.3f, 1.6f}, {2}));
      const Tensor img0 = rand({1, 1, 38, 30}), img1 = rand({1, 1, h1, w1});
      const Tensor d0 = net.descriptors(img0), d1 = net.descriptors(img1);
      const Tensor one = net.q0_from_descriptors(d0, d1);
      REQUIRE(one.size(1) == geo.grid_rows(38));
      for (int64_t rows : {1, 2, 4, 9}) {
        const Tensor chunked = net.match_volume(d0, d1, 0, rows);
        REQUIRE(chunked.shape() == one.shape());
        // Same arithmetic on the same numbers: equal bits, -inf where one pass has -inf.
        CHECK(same_values(chunked, one));
      }
      // A budget for 5 rows with their halos (2 x 3) chunks; one below a block with halo fails.
      const int64_t row_bytes = geo.grid_cols(30) * geo.bytes_per_point();
      CHECK(same_values(net.match_volume(d0, d1, 11 * row_bytes), one));
      CHECK_THROWS_WITH(net.match_volume(d0, d1, 3 * row_bytes),
                        Catch::Contains("--max-memory-mb"));
    }
  }
}

// check_image refuses exactly the grids on which Q_0 is -inf everywhere (no match, no loss term),
// for grids of 1 to 9 points a side and L = 1 to 5, on either axis; and an image without any
// reference point (here 4 px tall: match used to crash on such a second image).
TEST_CASE("deepmatch check_image: too many levels for the grid", "[deepmatch]") {
  manual_seed(5);
  DmGeometry geo;
  geo.radius = 3, geo.stride = 4, geo.offset = 2;
  for (int64_t levels = 1; levels <= 5; ++levels) {
    geo.levels = levels;
    DeepMatchNet net(DescriptorKind::hog, geo);
    NoGradGuard g;
    for (int64_t side = 1; side <= 9; ++side) {
      const int64_t px = geo.offset + geo.stride * (side - 1) + 1;  // exactly `side` points
      for (const bool tall : {false, true}) {
        const int64_t h = tall ? 40 : px, w = tall ? px : 40;
        REQUIRE(std::min(geo.grid_rows(h), geo.grid_cols(w)) == side);
        bool refused = false;
        try {
          geo.check_image(h, w, "the image");
        } catch (const Error& e) {
          refused = true;
          CHECK_THAT(e.what(), Catch::Contains("the image gives a grid of") &&
                                   Catch::Contains("--levels " + std::to_string(levels)));
        }
        const Tensor q0 = net.q0_from_descriptors(net.descriptors(rand({1, 1, h, w})),
                                                  net.descriptors(rand({1, 1, h, w})));
        const double best = amax(q0).item();
        INFO("L " << levels << ", " << h << " x " << w);
        CHECK(refused == (best == -std::numeric_limits<double>::infinity()));
      }
    }
  }
  geo.levels = 2;
  CHECK_THROWS_WITH(geo.check_image(geo.offset, 40, "image 2 (40 x 2)"),
                    Catch::Contains("image 2 (40 x 2) gives no reference point"));
  DeepMatchNet net(DescriptorKind::hog, geo);
  CHECK_THROWS_WITH(match_pair(net, rand({1, 20, 20}), rand({1, 4, 20}), int64_t{1} << 30),
                    Catch::Contains("image 2 (20 x 4)"));
}

TEST_CASE("deepmatch match_pair: the pipeline's matches and its stage times", "[deepmatch]") {
  manual_seed(4);
  DmGeometry geo;
  geo.radius = 5, geo.levels = 2, geo.stride = 4, geo.offset = 2;
  DeepMatchNet net(DescriptorKind::hog, geo);
  const Tensor img0 = rand({1, 38, 30}), img1 = rand({1, 38, 30});
  const MatchResult r = match_pair(net, img0, img1, int64_t{1} << 30);
  NoGradGuard g;
  const Tensor d0 = net.descriptors(unsqueeze(img0, 0)), d1 = net.descriptors(unsqueeze(img1, 0));
  const std::vector<Match> want = decode_matches(select(net.q0_from_descriptors(d0, d1), 0, 0), geo, 30, 38);
  REQUIRE(r.forward.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CHECK(r.forward[i].x1 == want[i].x1);
    CHECK(r.forward[i].y1 == want[i].y1);
  }
  CHECK(r.verified.size() <= r.forward.size());
  CHECK(r.flow.shape() == Shape{2, 38, 30});
  // Every stage does work, so each takes some time; the total is their sum.
  const MatchTiming& t = r.timing;
  for (double s : {t.descriptors, t.forward, t.backward, t.readout}) {
    CHECK(std::isfinite(s));
    CHECK(s > 0);
  }
  CHECK(t.total() == t.descriptors + t.forward + t.backward + t.readout);
}

TEST_CASE("deepmatch HOG-like descriptor", "[deepmatch]") {
  DmGeometry geo;
  DeepMatchNet net(DescriptorKind::hog, geo);
  manual_seed(5);
  const Tensor img = rand({1, 1, 24, 32});
  const Tensor d = net.descriptors(img);
  REQUIRE(d.shape() == Shape{1, 32, 24, 32});
  CHECK(amin(d).item() >= 0.0);
  const Tensor norms = sqrt(sum(d * d, {1}));
  CHECK(amax(norms).item() <= 1.0 + 1e-6);
  CHECK(amin(narrow(narrow(norms, 1, 4, 16), 2, 4, 24)).item() > 0.9);  // textured: near unit length

  // Flat images have no gradient: a zero descriptor, whatever their brightness.
  CHECK(amax(net.descriptors(full({1, 1, 16, 16}, 0.7))).item() < 1e-5);
  // Brightness offsets do not change it.
  CHECK(max_abs_diff(net.descriptors(img + 0.2), d) < 1e-5);

  // A ramp increasing along x: only the directions with cos > 0 respond, the x one the most.
  std::vector<float> ramp;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) ramp.push_back(0.05f * x);
  const Tensor f = hog_features(from_vector(ramp, {1, 1, 16, 16}));
  const float* p = f.contiguous().data<float>();
  auto bin = [&](int b) { return p[(b * 16 + 8) * 16 + 8]; };  // cell 0, pixel (8, 8)
  CHECK(bin(0) > bin(1));
  CHECK(bin(1) == Approx(bin(7)));
  CHECK(bin(2) == Approx(0).margin(1e-6));
  CHECK(bin(4) == 0.0f);

  // Shifting the image shifts the descriptor (away from the borders).
  const Tensor shifted = net.descriptors(narrow(narrow(img, 2, 3, 21), 3, 2, 30));
  CHECK(max_abs_diff(narrow(narrow(shifted, 2, 6, 8), 3, 6, 16),
                     narrow(narrow(d, 2, 9, 8), 3, 8, 16)) < 1e-5);
}

TEST_CASE("deepmatch CNN descriptor and ground-truth offsets", "[deepmatch]") {
  manual_seed(9);
  DmGeometry geo;
  geo.radius = 3;
  DeepMatchNet net(DescriptorKind::cnn, geo);
  const Tensor d = net.descriptors(rand({2, 1, 20, 24}));
  CHECK(d.shape() == Shape{2, 32, 20, 24});
  CHECK(amin(d).item() >= 0.0);
  CHECK(amax(sqrt(sum(d * d, {1}))).item() <= 1.0 + 1e-6);
  CHECK(net.feature_parameters().size() == 6);
  CHECK(DeepMatchNet(DescriptorKind::hog, geo).feature_parameters().empty());

  // Flow (dx, dy) = (2.4, -1.6) everywhere but one invalid reference point and one outside R.
  const int64_t h = 20, w = 24;
  std::vector<float> flow(2 * h * w);
  for (int64_t i = 0; i < h * w; ++i) flow[i] = 2.4f, flow[h * w + i] = -1.6f;
  flow[12 * w + 12] = 9.0f;  // reference (1, 1) moves 9 px: outside R = 3
  std::vector<uint8_t> valid(h * w, 1);
  valid[4 * w + 12] = 0;  // reference (0, 1)
  const Tensor gt = gt_offsets(from_vector(flow, {1, 2, h, w}), from_vector(valid, {1, h, w}, TensorOptions{}.with_dtype(DType::uint8)), geo);
  REQUIRE(gt.shape() == Shape{1, 2, 3, 2});
  const int64_t* g = gt.data<int64_t>();
  CHECK(g[0] == -2 + 3);  // gy of (0, 0)
  CHECK(g[1] == 2 + 3);   // gx of (0, 0)
  CHECK(g[2] == -1);      // (0, 1) invalid
  CHECK(g[(1 * 3 + 1) * 2 + 1] == 9 + 3);  // kept; the loss skips offsets outside [0, K)
}

TEST_CASE("deepmatch flow colours", "[deepmatch]") {
  const Tensor still = flow_to_color(zeros({2, 3, 4}));
  CHECK(still.shape() == Shape{3, 4, 3});
  CHECK(amin(still.to(DType::float32)).item() == 255.0);  // no motion: white
  const Tensor c = flow_to_color(from_vector(std::vector<float>{2, -2, 0, 0}, {2, 1, 2}));
  const uint8_t* p = c.data<uint8_t>();
  // Full length: fully saturated (some channel 0); opposite directions give different colours.
  CHECK(std::min({p[0], p[1], p[2]}) == 0);
  CHECK((p[0] != p[3] || p[1] != p[4] || p[2] != p[5]));
}

TEST_CASE("deepmatch training step: gradients reach the trained groups only and agree with finite differences", "[deepmatch]") {
  manual_seed(21);
  GrayImage noise;
  noise.h = 160, noise.w = 200;
  const Tensor r = rand({noise.h * noise.w});
  noise.v.assign(r.data<float>(), r.data<float>() + r.numel());
  SyntheticOptions o = noiseless();
  o.width = 48, o.height = 40, o.max_shift = 3;
  const PairSource src({noise}, {}, o);
  const PairBatch b = stack_pairs({src.pair(1, 0), src.pair(1, 1)});
  DmGeometry geo;
  geo.radius = 6, geo.levels = 2;
  const Tensor gt = gt_offsets(b.flow, b.valid, geo);
  for (bool learn_features : {true, false}) {
    DeepMatchNet net(DescriptorKind::cnn, geo);
    for (Tensor t : net.feature_parameters()) t.impl()->requires_grad = learn_features;
    const Tensor loss = dm_hinge_loss(net.forward_pair(b.img0, b.img1), gt, 2.0);
    loss.backward();
    REQUIRE(net.nu.grad().defined());
    CHECK(amax(abs(net.nu.grad())).item() > 0.0);
    for (const Tensor& t : net.feature_parameters()) CHECK(t.grad().defined() == learn_features);
    if (!learn_features) continue;
    // Float64: the loss's decrease along -grad matches the gradient's squared norm (a finite
    // difference through the CNN, the correlation, the U-network and the loss), and it decreases.
    net.to(DType::float64);
    const Tensor x0 = b.img0.to(DType::float64), x1 = b.img1.to(DType::float64);
    for (Tensor t : net.parameters()) t.zero_grad();
    const Tensor l64 = dm_hinge_loss(net.forward_pair(x0, x1), gt, 2.0);
    l64.backward();
    double slope = 0;
    const double eps = 1e-5;
    {
      NoGradGuard g;
      for (Tensor t : net.parameters()) {
        const Tensor d = t.grad().clone();
        slope += sum(d * d).item();
        t.copy_(t - d * eps);
      }
    }
    REQUIRE(slope > 0);
    const double moved = dm_hinge_loss(net.forward_pair(x0, x1), gt, 2.0).item();
    CHECK(moved < l64.item());
    CHECK((l64.item() - moved) / eps == Approx(slope).epsilon(1e-3));
  }
}
