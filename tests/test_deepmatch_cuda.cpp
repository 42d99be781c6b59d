// The [cuda] parity of the correlation's kernel versions beyond the op registry's samples (which
// run each op's GPU default against the CPU): every op on the GPU under version 1 and version 2
// (kernels/deepmatch.h), against the CPU and against each other, at a shape of the app's kind
// (64 channels, stride 8, a window of 41 x 41 over a target wider than one tile) and at one
// whose tiles do not fit (v2 then runs v1's kernel).
//   forward      v1 and v2 sum each score over c in the same order with the same fused
//                multiply-adds: bitwise equal on the GPU. 800 channels: scratch over the limit.
//   grad_ref     v2 sums in another order: both to rounding against the CPU. 1100 channels:
//                more channel groups than threads.
//   grad_target  the same terms in the same order: bitwise equal on the GPU. 200 channels: 13
//                channel groups, 19 columns per block.
// Against the CPU (no fused multiply-add) to rounding.
#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <functional>
#include <tuple>
#include <utility>

#include "core/rng.h"
#include "kernels/deepmatch.h"
#include "kernels/unary.h"
#include "models/deepmatch/matching.h"
#include "tests/support/test_utils.h"

using namespace cvg;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  return ac.shape() == bc.shape() && ac.dtype() == bc.dtype() &&
         std::memcmp(ac.raw_data(), bc.raw_data(), ac.numel() * dtype_size(ac.dtype())) == 0;
}

struct Geometry {
  int64_t d, h, w, ht, wt, r, stride, offset;
  int64_t k() const { return 2 * r + 1; }
};

// An op of two inputs on the CPU (its default version) and on the GPU under v1 and v2, for
// each float dtype; check(cpu, v1, v2, tol) compares them (tol: relative and absolute).
using Op = std::function<Tensor(const Tensor&, const Tensor&, const Geometry&)>;
using Inputs = std::function<std::array<Tensor, 2>(const Geometry&)>;
using Check = std::function<void(const Tensor&, const Tensor&, const Tensor&, double)>;

void compare_versions(const std::vector<Geometry>& shapes, const Inputs& inputs, const Op& op,
                      const Check& check) {
  for (const Geometry& s : shapes) {
    for (const DType dt : {DType::float32, DType::float64}) {
      INFO("d " << s.d << ", grid " << s.h << " x " << s.w << ", target " << s.ht << " x " << s.wt
                << ", R " << s.r << ", " << dtype_name(dt));
      const auto [a, b] = inputs(s);
      const Tensor ac = a.to(dt), bc = b.to(dt);
      const Tensor cpu = op(ac, bc, s);
      const Tensor ag = ac.to(kCUDA), bg = bc.to(kCUDA);
      Tensor v1, v2;
      {
        const DmCorrVersionGuard first(1);
        v1 = op(ag, bg, s).to(kCPU);
      }
      {
        const DmCorrVersionGuard second(2);
        v2 = op(ag, bg, s).to(kCPU);
      }
      check(cpu, v1, v2, dt == DType::float32 ? 1e-4 : 1e-10);
    }
  }
}

}  // namespace

TEST_CASE("dm_correlation: the GPU's tiled and per-score forwards match the CPU",
          "[cuda][deepmatch]") {
  manual_seed(11);
  compare_versions(
      {{64, 6, 11, 50, 90, 20, 8, 4}, {800, 3, 5, 30, 44, 10, 8, 4}},
      [](const Geometry& s) {
        return std::array<Tensor, 2>{rand({2, s.d, s.h, s.w}), rand({2, s.d, s.ht, s.wt})};
      },
      [](const Tensor& ref, const Tensor& tgt, const Geometry& s) {
        return dm_correlation(ref, tgt, s.r, s.stride, s.offset);
      },
      [](const Tensor& cpu, const Tensor& v1, const Tensor& v2, double tol) {
        CHECK(same_bits(v1, v2));
        CHECK(allclose(v2, cpu, tol, tol));
      });
}

TEST_CASE("dm_correlation_grad_ref: the GPU's tiled and per-point kernels match the CPU",
          "[cuda][deepmatch]") {
  manual_seed(12);
  compare_versions(
      {{64, 6, 11, 50, 90, 20, 8, 4}, {1100, 2, 3, 20, 30, 6, 8, 4}},
      [](const Geometry& s) {
        return std::array<Tensor, 2>{rand({2, s.h, s.w, s.k(), s.k()}) - 0.5,
                                     rand({2, s.d, s.ht, s.wt})};
      },
      [](const Tensor& g, const Tensor& tgt, const Geometry& s) {
        return dm_correlation_grad_ref(g, tgt, s.stride, s.offset);
      },
      [](const Tensor& cpu, const Tensor& v1, const Tensor& v2, double tol) {
        CHECK(allclose(v1, cpu, tol, tol));
        CHECK(allclose(v2, cpu, tol, tol));
      });
}

TEST_CASE("dm_correlation_grad_target: the GPU's tiled and per-pixel kernels match the CPU",
          "[cuda][deepmatch]") {
  manual_seed(13);
  compare_versions(
      {{64, 6, 11, 50, 90, 20, 8, 4}, {200, 3, 20, 12, 160, 6, 4, 2}},
      [](const Geometry& s) {
        return std::array<Tensor, 2>{rand({2, s.h, s.w, s.k(), s.k()}) - 0.5,
                                     rand({2, s.d, s.h, s.w})};
      },
      [](const Tensor& g, const Tensor& ref, const Geometry& s) {
        return dm_correlation_grad_target(g, ref, {s.ht, s.wt}, s.stride, s.offset);
      },
      [](const Tensor& cpu, const Tensor& v1, const Tensor& v2, double tol) {
        CHECK(same_bits(v1, v2));
        CHECK(allclose(v2, cpu, tol, tol));
      });
}

// fn() under DmLayerVersionGuard(1) to (4).
template <typename F>
auto under_layer_versions(const F& fn) {
  std::array<decltype(fn()), 4> r;
  for (int v = 1; v <= 4; ++v) {
    const DmLayerVersionGuard version(v);
    r[v - 1] = fn();
  }
  return r;
}

// The aggregation family at `level` on t (sw: switches for the disaggregation's backward):
// aggregate, its backward, disaggregate's values and switches, disaggregate's backward.
static std::array<Tensor, 5> aggregation_layers(const Tensor& t, const Tensor& sw,
                                                int64_t level) {
  const DmDisaggregated d = dm_disaggregate(t, level);
  return {dm_aggregate(t, level), dm_aggregate_backward(t, level), d.values, d.switches,
          dm_disaggregate_backward(t, sw, level)};
}

// The versions of the per-element layers on the GPU (kernels/deepmatch.h; the registry's CUDA
// column runs each op's GPU default only): every op under each, bitwise against each other (the
// same terms in the same order) and against the CPU to rounding (the switches exactly), at
// levels 0-3 on a grid wider than one run, K^2 = 81 not a multiple of kDmSpan; max-pool and its
// backward at K = 9 (padding 1) and 11 (padding 2), and the unpooling, its backward and adjoint
// there.
TEST_CASE("deepmatch layers: the GPU's versions 2 (runs, cells), 3 (spans) and 4 (short runs) "
          "equal one output per item",
          "[cuda][deepmatch]") {
  manual_seed(14);
  for (int64_t level = 0; level <= 3; ++level) {
    for (const DType dt : {DType::float32, DType::float64}) {
      INFO("level " << level << ", " << dtype_name(dt));
      const Tensor x = (rand({2, 7, 19, 9, 9}) - 0.3).to(dt);
      const Tensor sw = dm_disaggregate(x, level).switches;
      const auto cpu = aggregation_layers(x, sw, level);
      const Tensor xg = x.to(kCUDA), swg = sw.to(kCUDA);
      const auto [v1, v2, v3, v4] =
          under_layer_versions([&] { return aggregation_layers(xg, swg, level); });
      for (size_t i = 0; i < cpu.size(); ++i) {
        INFO("output " << i << " (aggregate, its backward, disaggregate, switches, backward)");
        CHECK(same_bits(v1[i].to(kCPU), v2[i].to(kCPU)));
        CHECK(same_bits(v1[i].to(kCPU), v3[i].to(kCPU)));
        CHECK(same_bits(v1[i].to(kCPU), v4[i].to(kCPU)));
        if (i == 3) CHECK(same_bits(v3[i].to(kCPU), cpu[i]));
        else CHECK(allclose(v3[i].to(kCPU), cpu[i], 1e-6, 1e-6));
      }
    }
  }
  for (const int64_t k : {9, 11}) {
    INFO("max-pool backward, K " << k);
    const Tensor s = rand({2, 3, 5, k, k});
    const DmPooled p = dm_max_pool(s);
    const Tensor g = rand(p.values.shape()) - 0.5;
    const Tensor cpu = dm_max_pool_backward(g, p.switches, k);
    const Tensor gg = g.to(kCUDA), swg = p.switches.to(kCUDA);
    const auto [v1, v2, v3, v4] =
        under_layer_versions([&] { return dm_max_pool_backward(gg, swg, k).to(kCPU); });
    CHECK(same_bits(v1, v2));
    CHECK(same_bits(v2, v3));  // versions 3 and 4 run the cells
    CHECK(same_bits(v2, v4));
    CHECK(same_bits(v2, cpu));  // sums of at most 2 x 2 gradients, no multiplies: exact
    // dm_max_pool by pairs of outputs (version 2 and up): maxima, exact.
    const Tensor sg = s.to(kCUDA);
    const auto pooled = under_layer_versions([&] {
      const DmPooled q = dm_max_pool(sg);
      return std::array<Tensor, 2>{q.values.to(kCPU), q.switches.to(kCPU)};
    });
    for (const auto& q : pooled) {
      CHECK(same_bits(q[0], p.values));
      CHECK(same_bits(q[1], p.switches));
    }
    // dm_unpool by the same cells (a max and one add: exact too).
    const Tensor skip = rand(s.shape());
    const Tensor unpool_cpu = dm_unpool(p.values, p.switches, skip);
    const Tensor qg = p.values.to(kCUDA), skg = skip.to(kCUDA);
    const auto [u1, u2, u3, u4] =
        under_layer_versions([&] { return dm_unpool(qg, swg, skg).to(kCPU); });
    CHECK(same_bits(u1, u2));
    CHECK(same_bits(u2, u3));
    CHECK(same_bits(u2, u4));
    // Its backward and adjoint by cells: gathers of single values, exact.
    const Tensor gf = rand(s.shape()) - 0.5;
    const Tensor gfg = gf.to(kCUDA);
    const auto [b1, b2, b3, b4] =
        under_layer_versions([&] { return dm_unpool_backward(gfg, qg, swg, k).to(kCPU); });
    CHECK(same_bits(b1, b2));
    CHECK(same_bits(b2, b3));
    CHECK(same_bits(b2, b4));
    CHECK(same_bits(b2, dm_unpool_backward(gf, p.values, p.switches, k)));
    const auto [a1, a2, a3, a4] =
        under_layer_versions([&] { return dm_unpool_adjoint(gg, qg, swg, k).to(kCPU); });
    CHECK(same_bits(a1, a2));
    CHECK(same_bits(a2, a3));
    CHECK(same_bits(a2, a4));
    CHECK(same_bits(a2, dm_unpool_adjoint(g, p.values, p.switches, k)));
    CHECK(same_bits(u2, unpool_cpu));
    // Both of dm_unpool's gradients in one pass (its backward without create_graph).
    const Tensor qfg = dm_unpool(qg, swg, skg);
    const DmUnpoolGrads both = dm_unpool_grads(gfg, qg, swg, qfg);
    CHECK(same_bits(both.q_half.to(kCPU), b2));
    CHECK(same_bits(both.s.to(kCPU), dm_unpool_skip_backward(gf, unpool_cpu)));
  }
}

// Deep levels (27-39): the GPU launches with 32-bit indices while every extent fits, and from
// level 28 the runs' strides do not (kernels/deepmatch.cpp, agg_extent). Every version there
// equals the CPU (the switches exactly), as at levels 0-3 above.
TEST_CASE("deepmatch layers: levels 27-39 on the GPU equal the CPU", "[cuda][deepmatch]") {
  manual_seed(15);
  for (const int64_t level : {27, 28, 29, 31, 32, 39}) {
    INFO("level " << level);
    const Tensor x = rand({1, 3, 6, 3, 3}) - 0.3;
    const Tensor sw = dm_disaggregate(x, level).switches;
    const auto cpu = aggregation_layers(x, sw, level);
    const Tensor xg = x.to(kCUDA), swg = sw.to(kCUDA);
    const auto versions =
        under_layer_versions([&] { return aggregation_layers(xg, swg, level); });
    for (const auto& v : versions)
      for (size_t i = 0; i < cpu.size(); ++i) {
        INFO("output " << i << " (aggregate, its backward, disaggregate, switches, backward)");
        if (i == 3) CHECK(same_bits(v[i].to(kCPU), cpu[i]));
        else CHECK(allclose(v[i].to(kCPU), cpu[i], 1e-6, 1e-6));
      }
  }
}

// decode_matches takes each point's argmax where Q_0 lives: on the GPU it must give the CPU's
// matches exactly (first maximum on ties, -inf points left out).
TEST_CASE("deepmatch decode_matches: the GPU's argmax equals the CPU's", "[cuda][deepmatch]") {
  manual_seed(12);
  deepmatch::DmGeometry geo;
  geo.radius = 7, geo.stride = 8, geo.offset = 4;
  const int64_t k = geo.k0();
  // Scores on a coarse grid (many ties), one point all -inf.
  Tensor q = randint(0, 4, {6, 9, k, k}).to(DType::float32).contiguous();
  float* p = q.data<float>();
  for (int64_t t = 0; t < k * k; ++t) p[(2 * 9 + 5) * k * k + t] = -INFINITY;
  // A large second image, then one of 50 x 30 pixels (targets outside it masked on the GPU; the
  // points of the last row see none).
  for (const auto& [w, h, n] : {std::tuple<int64_t, int64_t, size_t>{1000, 1000, 6 * 9 - 1}, {50, 30, 5 * 7 - 1}}) {
    const std::vector<deepmatch::Match> cpu = deepmatch::decode_matches(q, geo, w, h);
    const std::vector<deepmatch::Match> gpu = deepmatch::decode_matches(q.to(kCUDA), geo, w, h);
    INFO("second image " << w << " x " << h);
    REQUIRE(cpu.size() == n);
    REQUIRE(gpu.size() == cpu.size());
    for (size_t i = 0; i < cpu.size(); ++i) {
      INFO("match " << i);
      CHECK(gpu[i].x0 == cpu[i].x0);
      CHECK(gpu[i].y0 == cpu[i].y0);
      CHECK(gpu[i].x1 == cpu[i].x1);
      CHECK(gpu[i].y1 == cpu[i].y1);
      CHECK(gpu[i].score == cpu[i].score);
    }
  }
}
