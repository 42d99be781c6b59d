// Deep Matching: the U-network of kernels/deepmatch.h against a brute-force DeepMatching built
// plainly from the notes (../shared/papers/thewlis-objects-from-motion.md, Ch.3), in physical
// pixel coordinates rather than the layers' index formulas:
//   - the pyramid: S_{l+1/2}(q|p) = max of S_l(q'|p) over ||q' - q||_inf <= 2^l eta_0 (eq. 3,
//     first maximum in row-major order), S_{l+1}(q|p) = [mean over the in-image children
//     p + 2^l delta_e of S_{l+1/2}(q|child)]^nu_l (eq. 4, q relative to p);
//   - the decoder: the recursive top-down DM decoder that walks every path of the set H from
//     each (p_L, q_L) down to level 0 (children p_l = p_{l+1} + 2^l delta_e, q_l the switch of
//     q_{l+1} at p_l), adding the scores, and keeps at each (q_0 | p_0) the best path sum.
// Q_0 of the network must equal the decoder's (max abs difference <= 1e-6, the same -inf
// entries). Then a float64 gradcheck of the whole network through the structured loss.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <vector>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/deepmatch.h"
#include "kernels/reduce.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_registry.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

const double kNegInf = -std::numeric_limits<double>::infinity();

// DM parameters of the notes: alpha_0 = delta_0 = 8, beta_0 = 4, gamma_0 = eta_0 = 1.
constexpr double kAlpha = 8, kDelta = 8, kBeta = 4, kEta = 1;

// One level's 4-D map for one image: [i][j][ky][kx] flattened.
struct Level {
  int64_t h = 0, w = 0, r = 0, k = 0;
  std::vector<double> v;
  double& at(int64_t i, int64_t j, int64_t ky, int64_t kx) {
    return v[((i * w + j) * k + ky) * k + kx];
  }
};

// Physical position of reference index i at level l: alpha (i + tau_l) + beta, tau_0 = 0 and
// tau_l = 1/2 above (the children of level 0 are {i, i + 1}; notes section 8.1).
double ref_pos(int64_t i, int64_t l) { return kAlpha * (i + (l >= 1 ? 0.5 : 0.0)) + kBeta; }

// The reference index at level l whose position is `pos`, or -1 when none is.
int64_t ref_index(double pos, int64_t l, int64_t size) {
  const double i = (pos - kBeta) / kAlpha - (l >= 1 ? 0.5 : 0.0);
  const double ri = std::round(i);
  if (std::fabs(i - ri) > 1e-9 || ri < 0 || ri >= size) return -1;
  return static_cast<int64_t>(ri);
}

struct BruteForce {
  std::vector<Level> s;          // S_0 .. S_L
  std::vector<std::vector<int64_t>> sw;  // sw[l]: fine flat offset ky * K_l + kx per coarse element
  std::vector<double> q0;        // decoded Q_0
};

// The 4 corner displacements delta_e = (delta_0 / 2) eps_e (unit eps of eq. 4).
const double kEps[4][2] = {{-1, -1}, {-1, +1}, {+1, +1}, {+1, -1}};

BruteForce brute_force(const Level& s0, const std::vector<double>& nus) {
  BruteForce b;
  b.s.push_back(s0);
  const int64_t h = s0.h, w = s0.w;
  for (size_t l = 0; l < nus.size(); ++l) {
    Level& f = b.s[l];
    const double step = std::ldexp(1.0, static_cast<int>(l));  // 2^l pixels per fine offset
    Level c;
    c.h = h;
    c.w = w;
    c.r = (f.r + 1) / 2;
    c.k = 2 * c.r + 1;
    Level half = c;  // S_{l+1/2}, on the coarse offsets, at the fine references
    half.v.assign(h * w * c.k * c.k, 0.0);
    std::vector<int64_t> sw(half.v.size(), -1);
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        for (int64_t cy = 0; cy < c.k; ++cy)
          for (int64_t cx = 0; cx < c.k; ++cx) {
            const double oy = 2 * step * (cy - c.r), ox = 2 * step * (cx - c.r);
            bool have = false;
            double best = 0;
            int64_t arg = -1;
            for (int64_t fy = 0; fy < f.k; ++fy)
              for (int64_t fx = 0; fx < f.k; ++fx) {
                if (std::fabs(step * (fy - f.r) - oy) > step * kEta) continue;
                if (std::fabs(step * (fx - f.r) - ox) > step * kEta) continue;
                const double v = f.at(i, j, fy, fx);
                if (!have || v > best) {
                  have = true;
                  best = v;
                  arg = fy * f.k + fx;
                }
              }
            REQUIRE(have);
            half.at(i, j, cy, cx) = best;
            sw[((i * w + j) * c.k + cy) * c.k + cx] = arg;
          }
    b.sw.push_back(sw);
    // Aggregation at the four corners 2^l delta_e around p_{l+1}, then the power.
    c.v.assign(half.v.size(), 0.0);
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        for (int64_t k = 0; k < c.k * c.k; ++k) {
          double acc = 0;
          int cnt = 0;
          for (const auto& e : kEps) {
            const int64_t ci = ref_index(ref_pos(i, l + 1) + step * kDelta / 2 * e[0], l, h);
            const int64_t cj = ref_index(ref_pos(j, l + 1) + step * kDelta / 2 * e[1], l, w);
            if (ci < 0 || cj < 0) continue;
            acc += half.at(ci, cj, k / c.k, k % c.k);
            ++cnt;
          }
          const double a = cnt > 0 ? acc / cnt : 0.0;
          c.at(i, j, k / c.k, k % c.k) = a > 0 ? std::pow(a, nus[l]) : 0.0;
        }
    b.s.push_back(c);
  }
  // Top-down recursive decoder over every path.
  const int64_t top = static_cast<int64_t>(nus.size());
  b.q0.assign(s0.v.size(), kNegInf);
  std::function<void(int64_t, int64_t, int64_t, int64_t, double)> descend =
      [&](int64_t l, int64_t i, int64_t j, int64_t k, double acc) {
        if (l == 0) {
          double& q = b.q0[(i * w + j) * s0.k * s0.k + k];
          q = std::max(q, acc);
          return;
        }
        const double step = std::ldexp(1.0, static_cast<int>(l - 1));
        const int64_t kc = b.s[l].k;
        for (const auto& e : kEps) {
          const int64_t ci = ref_index(ref_pos(i, l) + step * kDelta / 2 * e[0], l - 1, h);
          const int64_t cj = ref_index(ref_pos(j, l) + step * kDelta / 2 * e[1], l - 1, w);
          if (ci < 0 || cj < 0) continue;
          const int64_t fine = b.sw[l - 1][(ci * w + cj) * kc * kc + k];
          Level& f = b.s[l - 1];
          descend(l - 1, ci, cj, fine, acc + f.at(ci, cj, fine / f.k, fine % f.k));
        }
      };
  Level& sl = b.s[top];
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j)
      for (int64_t k = 0; k < sl.k * sl.k; ++k)
        descend(top, i, j, k, sl.at(i, j, k / sl.k, k % sl.k));
  return b;
}

// One image of an N x H x W x K x K tensor as a Level.
Level level_of(const Tensor& t, int64_t n) {
  Level lv;
  lv.h = t.shape()[1];
  lv.w = t.shape()[2];
  lv.k = t.shape()[3];
  lv.r = (lv.k - 1) / 2;
  const std::vector<double> all = t.to_vector<double>();
  const int64_t per = lv.h * lv.w * lv.k * lv.k;
  lv.v.assign(all.begin() + n * per, all.begin() + (n + 1) * per);
  return lv;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;  // equal infinities
    m = std::max(m, std::fabs(a[i] - b[i]));  // inf when only one is -inf
  }
  return m;
}

void check_against_brute_force(const Shape& shape, const std::vector<double>& nus,
                               uint64_t seed) {
  const Tensor s0 = uniform64(shape, 0, 1, seed, false);
  TensorList nu_t;
  for (double nu : nus) nu_t.push_back(t64({nu}, {}, false));
  const Tensor q0 = deep_matching(s0, nu_t);
  REQUIRE(q0.shape() == shape);
  // The pyramid of the layers, to compare level by level.
  std::vector<Tensor> s{s0};
  for (size_t l = 0; l < nus.size(); ++l)
    s.push_back(dm_power(dm_aggregate(dm_max_pool(s.back()).values, l), nu_t[l]));
  int64_t finite = 0;
  for (int64_t n = 0; n < shape[0]; ++n) {
    const BruteForce b = brute_force(level_of(s0, n), nus);
    for (size_t l = 1; l <= nus.size(); ++l) {
      INFO("image " << n << ", S_" << l);
      CHECK(max_diff(level_of(s[l], n).v, b.s[l].v) <= 1e-12);
    }
    INFO("image " << n << ", Q_0");
    const double d = max_diff(level_of(q0, n).v, b.q0);
    CHECK(d <= 1e-6);
    for (double v : b.q0) finite += std::isfinite(v) ? 1 : 0;
  }
  // The check means something only if many entries are reachable and some are not.
  CHECK(finite > 0);
  CHECK(finite < q0.numel());
}

}  // namespace

TEST_CASE("deep_matching Q_0 equals the brute-force recursive DM decoder", "[deepmatch]") {
  SECTION("P 4 x 4, R0 6, L 3 (the notes' exactness test)") {
    check_against_brute_force({1, 4, 4, 13, 13}, {1.4, 1.3, 1.5}, 101);
  }
  SECTION("2 images, P 4 x 5, R0 5 (odd radii: padding 2), L 3") {
    check_against_brute_force({2, 4, 5, 11, 11}, {1.2, 1.6, 1.4}, 102);
  }
  SECTION("P 6 x 5, R0 9, L 4 (shift 4 at the top: references without children)") {
    check_against_brute_force({1, 6, 5, 19, 19}, {1.4, 1.4, 1.4, 1.4}, 103);
  }
}

TEST_CASE("deep_matching + structured loss pass float64 gradcheck in S_0 and every nu",
          "[deepmatch][grad]") {
  const Tensor s0 = uniform64({1, 3, 3, 5, 5}, 0.05, 1, 201);
  const Tensor nu1 = t64({1.4}, {}), nu2 = t64({1.3}, {});
  // Ground truth at the lowest finite score of each point, so that the loss has active terms
  // (a -inf ground truth would skip the point).
  std::vector<int32_t> g;
  {
    NoGradGuard no_grad;
    const std::vector<double> q = deep_matching(s0, {nu1, nu2}).to_vector<double>();
    for (int64_t p = 0; p < 9; ++p) {
      int64_t arg = -1;
      for (int64_t k = 0; k < 25; ++k) {
        const double v = q[p * 25 + k];
        if (std::isfinite(v) && (arg < 0 || v < q[p * 25 + arg])) arg = k;
      }
      REQUIRE(arg >= 0);
      g.push_back(static_cast<int32_t>(arg / 5));
      g.push_back(static_cast<int32_t>(arg % 5));
    }
  }
  const Tensor gt = from_vector<int32_t>(g, {1, 3, 3, 2}, TensorOptions{}.with_dtype(DType::int32));
  auto fn = [&](const TensorList& xs) {
    return dm_hinge_loss(deep_matching(xs[0], {xs[1], xs[2]}), gt, 1.0);
  };
  // The loss must depend on the inputs (some terms active) for the check to mean anything.
  REQUIRE(fn({s0, nu1, nu2}).item() > 0);
  const GradcheckResult r = gradcheck(fn, {s0, nu1, nu2});
  INFO(r.message);
  CHECK(r.ok);
}
