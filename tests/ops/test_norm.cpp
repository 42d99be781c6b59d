// Tests of the normalisation ops (kernels/norm.h): registry entries with hand-computed cases
// (eps = 0 and values whose statistics are exact in binary, so outputs are exact) and gradcheck
// / gradgradcheck samples for x, weight and bias; plain test cases for the running-stat update,
// eval mode, the fused backward against the differentiable one, and the error messages.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/norm.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

using Catch::Matchers::Contains;

// 2 x 2 (N x C): channel 0 holds {1, 3} (mean 2, var 1), channel 1 holds {2, 6} (mean 4, var 4).
Tensor bn_x() { return t64({1, 2, 3, 6}, {2, 2}); }

OpFn bn_train(double eps = 1e-5) {
  return [eps](const TensorList& xs) {
    return batch_norm(xs[0], xs[1], xs[2], Tensor(), Tensor(), true, 0.1, eps);
  };
}

// Running stats as constants (no gradient): mean (1, 2), var (4, 0.25).
OpFn bn_eval(double eps = 0.0) {
  return [eps](const TensorList& xs) {
    // In the input's dtype and on its device (the registry reruns samples in float32 and on
    // the GPU).
    const TensorOptions o = xs[0].options();
    const Tensor rm = tensor({1, 2}, {2}, o), rv = tensor({4, 0.25}, {2}, o);
    return batch_norm(xs[0], xs[1], xs[2], rm, rv, false, 0.1, eps);
  };
}

TensorList grads_of(const Tensor& y, const TensorList& inputs, const Tensor& gout, bool create) {
  return grad({y}, inputs, {gout}, {.create_graph = create, .retain_graph = create, .allow_unused = true});
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// batch_norm

CVG_REGISTER_OP(OpSpec{
    "batch_norm (training)",
    bn_train(),
    [] {
      return std::vector<OpSample>{
          // xhat = (-1, -1; 1, 1); y = xhat * (2, 3) + (0.5, -1).
          {"hand 2 x 2, eps 0",
           {bn_x(), t64({2, 3}, {2}), t64({0.5, -1}, {2})},
           t64({-1.5, -4, 2.5, 2}, {2, 2}, false),
           true,
           bn_train(0.0)},
          {"N x C (no spatial dims)",
           {uniform64({5, 3}, -2, 2, 1), uniform64({3}, 0.5, 2, 2), uniform64({3}, -1, 1, 3)},
           Tensor(), true, nullptr},
          {"N x C x H x W",
           {uniform64({3, 2, 3, 4}, -2, 2, 4), uniform64({2}, 0.5, 2, 5), uniform64({2}, -1, 1, 6)},
           Tensor(), true, nullptr},
          {"N x C x D x H x W, large mean",
           {add(uniform64({2, 3, 2, 2, 3}, -1, 1, 7, false), 50.0).set_requires_grad(true),
            uniform64({3}, 0.5, 2, 8), uniform64({3}, -1, 1, 9)},
           Tensor(), true, nullptr},
          {"transposed input",
           {uniform64({3, 4, 2}, -2, 2, 10), uniform64({2}, 0.5, 2, 11), uniform64({2}, -1, 1, 12)},
           Tensor(), true,
           [](const TensorList& xs) {
             return batch_norm(permute(xs[0], {0, 2, 1}), xs[1], xs[2], Tensor(), Tensor(), true);
           }},
          {"no weight, no bias", {uniform64({4, 3, 5}, -2, 2, 13)}, Tensor(), true,
           [](const TensorList& xs) {
             return batch_norm(xs[0], Tensor(), Tensor(), Tensor(), Tensor(), true);
           }},
          // 4,608 elements per channel: the CUDA kernels' split path (several blocks per
          // group, kernels/norm_cuda.cu); too large for a finite-difference gradcheck, so it is
          // checked against the float64 CPU forward and backward by the [cuda] column.
          {"3 channels of 2 x 48 x 48 (CUDA split path)",
           {uniform64({2, 3, 48, 48}, -2, 2, 14), uniform64({3}, 0.5, 2, 15), uniform64({3}, -1, 1, 16)},
           Tensor(), false, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "batch_norm (eval)",
    bn_eval(),
    [] {
      return std::vector<OpSample>{
          // Channel 0: (x - 1) / 2 * 2 + 0.5; channel 1: (x - 2) / 0.5 * 3 - 1.
          {"hand 2 x 2 with running stats, eps 0",
           {bn_x(), t64({2, 3}, {2}), t64({0.5, -1}, {2})},
           t64({0.5, -1, 2.5, 23}, {2, 2}, false),
           true,
           nullptr},
          {"N x C x H x W",
           {uniform64({3, 2, 2, 3}, -2, 2, 21), uniform64({2}, 0.5, 2, 22), uniform64({2}, -1, 1, 23)},
           Tensor(), true, bn_eval(1e-5)}};
    }});

namespace {

// The CUDA split path's statistics (norm_cuda.cu: norm_moments_kernel, then norm_stats_kernel),
// on the CPU: the group cut into `chunks` chunks of ceil(n / chunks); per chunk, 256 lanes
// (the block's threads) each sum every 256th element and a tree adds the lanes, for the mean
// and then the squared deviations, in T; the chunks merged in order with norm_merge, in double
// (as the kernel: in float, 2048 small updates of a mean near 1000 drift by 1e-5 of it).
template <typename T>
NormMoments<double> chunked_moments(const std::vector<T>& x, int64_t chunks) {
  const int64_t n = static_cast<int64_t>(x.size()), len = (n + chunks - 1) / chunks;
  auto block_sum = [](int64_t j0, int64_t j1, auto term) {
    std::array<T, 256> lane{};
    for (int64_t j = j0; j < j1; ++j) lane[static_cast<size_t>((j - j0) % 256)] += term(j);
    for (size_t w = 128; w > 0; w /= 2)
      for (size_t i = 0; i < w; ++i) lane[i] += lane[i + w];
    return lane[0];
  };
  NormMoments<double> acc{0, 0, 0};
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t j0 = std::min(n, c * len), j1 = std::min(n, j0 + len);
    const T s = block_sum(j0, j1, [&](int64_t j) { return x[j]; });
    const T m = j1 > j0 ? s / static_cast<T>(j1 - j0) : T(0);
    const T q = block_sum(j0, j1, [&](int64_t j) { return (x[j] - m) * (x[j] - m); });
    acc = norm_merge(acc, NormMoments<double>{static_cast<double>(j1 - j0), m, q});
  }
  return acc;
}

}  // namespace

TEST_CASE("norm_merge: chunk moments merged in order give the group's mean and variance",
          "[ops][norm]") {
  // |mean| >> std, and a ramp along the group so that the chunks' means differ (the merge's
  // between-chunk term matters): x_j = 1000 + 2 j / n + noise.
  const int64_t n = 78401;  // a 64 x 35 x 35 batch_norm channel, plus one: a short last chunk
  std::vector<double> xd(n);
  uint64_t state = 12345;
  for (int64_t j = 0; j < n; ++j) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>(state >> 11) / 9007199254740992.0;
    xd[j] = 1000.0 + 2.0 * static_cast<double>(j) / static_cast<double>(n) + 0.1 * u;
  }
  double mean = 0, m2 = 0;
  for (double v : xd) mean += v;
  mean /= static_cast<double>(n);
  for (double v : xd) m2 += (v - mean) * (v - mean);
  const std::vector<float> xf(xd.begin(), xd.end());
  for (int64_t chunks : {1, 2, 7, 20, 32, 2048}) {
    INFO("chunks " << chunks);
    const NormMoments<double> d = chunked_moments(xd, chunks);
    CHECK(d.n == static_cast<double>(n));
    CHECK(d.mean == Approx(mean).epsilon(1e-14));
    CHECK(d.m2 == Approx(m2).epsilon(1e-10));
    // float32, as the kernels compute: the variance (about 0.34) keeps 4 digits although
    // float32 holds 1000 + x to 6e-5 (a one-pass sum of squares would lose it all).
    const NormMoments<double> f = chunked_moments(xf, chunks);
    CHECK(f.mean == Approx(mean).epsilon(1e-7));
    CHECK(f.m2 / static_cast<double>(n) == Approx(m2 / static_cast<double>(n)).epsilon(1e-3));
  }
  // Empty sets are no-ops on either side.
  const NormMoments<double> a{3, 2, 5}, none{0, 0, 0};
  const NormMoments<double> left = norm_merge(a, none), right = norm_merge(none, a);
  CHECK((left.n == 3 && left.mean == 2 && left.m2 == 5));
  CHECK((right.n == 3 && right.mean == 2 && right.m2 == 5));
  const NormMoments<double> both = norm_merge(none, none);  // 0 / 0 must not make a NaN
  CHECK((both.n == 0 && both.mean == 0 && both.m2 == 0));
}

TEST_CASE("batch_norm: running stats after one and two training steps", "[ops][norm]") {
  Tensor rm = t64({0, 0}, {2}, false), rv = t64({1, 1}, {2}, false);
  // Step 1: batch means (2, 4), unbiased variances (2, 8).
  batch_norm(bn_x(), Tensor(), Tensor(), rm, rv, true, 0.1);
  CHECK(allclose(rm, t64({0.2, 0.4}, {2}, false), 1e-12, 1e-12));
  CHECK(allclose(rv, t64({1.1, 1.7}, {2}, false), 1e-12, 1e-12));
  // Step 2: channel 0 {0, 4} (mean 2, unbiased var 8), channel 1 {10, 20} (15, 50).
  batch_norm(t64({0, 10, 4, 20}, {2, 2}), Tensor(), Tensor(), rm, rv, true, 0.1);
  CHECK(allclose(rm, t64({0.38, 1.86}, {2}, false), 1e-12, 1e-12));
  CHECK(allclose(rv, t64({1.79, 6.53}, {2}, false), 1e-12, 1e-12));
  CHECK_FALSE(rm.requires_grad());
}

TEST_CASE("batch_norm: non-contiguous running buffers are updated in place, versions bumped",
          "[ops][norm]") {
  // The same update into every other element of 4-vectors (written back through a copy) and
  // into plain 2-vectors (updated in place).
  Tensor rm4 = t64({0, 7, 0, 7}, {4}, false), rv4 = t64({1, 7, 1, 7}, {4}, false);
  Tensor rm = slice(rm4, 0, 0, 4, 2), rv = slice(rv4, 0, 0, 4, 2);
  Tensor rm2 = t64({0, 0}, {2}, false), rv2 = t64({1, 1}, {2}, false);
  const uint64_t v_strided = rm4.version(), v_plain = rm2.version();
  batch_norm(bn_x(), Tensor(), Tensor(), rm, rv, true, 0.1);
  batch_norm(bn_x(), Tensor(), Tensor(), rm2, rv2, true, 0.1);
  CHECK(allclose(rm4, t64({0.2, 7, 0.4, 7}, {4}, false), 1e-12, 1e-12));
  CHECK(allclose(rv4, t64({1.1, 7, 1.7, 7}, {4}, false), 1e-12, 1e-12));
  CHECK(allclose(rm2, t64({0.2, 0.4}, {2}, false), 1e-12, 1e-12));
  CHECK(allclose(rv2, t64({1.1, 1.7}, {2}, false), 1e-12, 1e-12));
  CHECK(rm4.version() > v_strided);
  CHECK(rm2.version() > v_plain);
}

TEST_CASE("batch_norm: spatial positions count in the statistics and the running var", "[ops][norm]") {
  // One channel, N = 1, 2 x 2 plane {1, 3, 1, 3}: mean 2, biased var 1, unbiased 4/3.
  Tensor rm = t64({0}, {1}, false), rv = t64({0}, {1}, false);
  const Tensor y =
      batch_norm(t64({1, 3, 1, 3}, {1, 1, 2, 2}, false), Tensor(), Tensor(), rm, rv, true, 1.0, 0.0);
  CHECK(allclose(y, t64({-1, 1, -1, 1}, {1, 1, 2, 2}, false), 1e-12, 1e-12));
  CHECK(allclose(rm, t64({2}, {1}, false), 1e-12, 1e-12));
  CHECK(allclose(rv, t64({4.0 / 3.0}, {1}, false), 1e-12, 1e-12));
}

TEST_CASE("batch_norm: eval mode uses the running stats and leaves them alone", "[ops][norm]") {
  const Tensor rm = t64({1, 2}, {2}, false), rv = t64({4, 0.25}, {2}, false);
  const Tensor x = uniform64({3, 2, 2}, -2, 2, 31, false);
  const Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, false, 0.1, 0.0);
  const Tensor expected = (x - reshape(rm, {1, 2, 1})) / sqrt(reshape(rv, {1, 2, 1}));
  CHECK(allclose(y, expected, 1e-12, 1e-12));
  CHECK(allclose(rm, t64({1, 2}, {2}, false), 0, 0));
  CHECK(allclose(rv, t64({4, 0.25}, {2}, false), 0, 0));
}

TEST_CASE("batch_norm: training on float32 matches float64 and updates float32 running stats",
          "[ops][norm]") {
  const Tensor x64 = uniform64({8, 3, 5, 5}, -3, 5, 32, false);
  Tensor rm = zeros({3}), rv = ones({3});
  const Tensor y = batch_norm(x64.to(DType::float32), Tensor(), Tensor(), rm, rv, true, 0.1);
  const Tensor ref = batch_norm(x64, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1);
  CHECK(y.dtype() == DType::float32);
  CHECK(allclose(y, ref, 1e-5, 1e-5));
  const Tensor expect_rm = mean(x64, {0, 2, 3}) * 0.1;
  CHECK(allclose(rm, expect_rm, 1e-6, 1e-6));
  CHECK(allclose(rv, var(x64, {0, 2, 3}, true) * 0.1 + 0.9, 1e-5, 1e-5));
}

// ---------------------------------------------------------------------------------------------
// instance_norm and layer_norm

CVG_REGISTER_OP(OpSpec{
    "instance_norm",
    [](const TensorList& xs) { return instance_norm(xs[0], xs[1], xs[2]); },
    [] {
      return std::vector<OpSample>{
          // Planes {1,3,1,3} {0,4,4,0} {5,7,5,7} {10,10,30,30} normalise to +-1 patterns;
          // weight (2, 3), bias (1, 0) per channel.
          {"hand 2 x 2 x 4, eps 0",
           {t64({1, 3, 1, 3, 0, 4, 4, 0, 5, 7, 5, 7, 10, 10, 30, 30}, {2, 2, 4}),
            t64({2, 3}, {2}), t64({1, 0}, {2})},
           t64({-1, 3, -1, 3, -3, 3, 3, -3, -1, 3, -1, 3, -3, -3, 3, 3}, {2, 2, 4}, false),
           true,
           [](const TensorList& xs) { return instance_norm(xs[0], xs[1], xs[2], 0.0); }},
          {"N x C x H x W",
           {uniform64({2, 3, 3, 4}, -2, 2, 41), uniform64({3}, 0.5, 2, 42), uniform64({3}, -1, 1, 43)},
           Tensor(), true, nullptr},
          {"no affine, transposed planes", {uniform64({2, 2, 4, 3}, -2, 2, 44)}, Tensor(), true,
           [](const TensorList& xs) { return instance_norm(transpose(xs[0], 2, 3)); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "layer_norm",
    [](const TensorList& xs) { return layer_norm(xs[0], {2, 3}, xs[1], xs[2]); },
    [] {
      return std::vector<OpSample>{
          // Rows {1,3,1,3} -> (-1,1,-1,1) and {0,4,4,0} -> (-1,1,1,-1); w (1,2,3,4), b (0,0,0,1).
          {"hand 2 x 4, eps 0",
           {t64({1, 3, 1, 3, 0, 4, 4, 0}, {2, 4}), t64({1, 2, 3, 4}, {4}), t64({0, 0, 0, 1}, {4})},
           t64({-1, 2, -3, 5, -1, 2, 3, -3}, {2, 4}, false),
           true,
           [](const TensorList& xs) { return layer_norm(xs[0], {4}, xs[1], xs[2], 0.0); }},
          {"4 x 2 x 3 over (2, 3)",
           {uniform64({4, 2, 3}, -2, 2, 51), uniform64({2, 3}, 0.5, 2, 52), uniform64({2, 3}, -1, 1, 53)},
           Tensor(), true, nullptr},
          {"over the last dim, no affine", {uniform64({3, 2, 5}, -2, 2, 54)}, Tensor(), true,
           [](const TensorList& xs) { return layer_norm(xs[0], {5}); }},
          {"whole tensor (normalized_shape = shape), transposed", 
           {uniform64({3, 4}, -2, 2, 55), uniform64({4, 3}, 0.5, 2, 56), uniform64({4, 3}, -1, 1, 57)},
           Tensor(), true,
           [](const TensorList& xs) { return layer_norm(transpose(xs[0], 0, 1), {4, 3}, xs[1], xs[2]); }},
          // Two rows of 4,800 elements: the CUDA split path (see batch_norm above).
          {"2 rows of 3 x 40 x 40 (CUDA split path)",
           {uniform64({2, 3, 40, 40}, -2, 2, 58), uniform64({3, 40, 40}, 0.5, 2, 59),
            uniform64({3, 40, 40}, -1, 1, 60)},
           Tensor(), false,
           [](const TensorList& xs) { return layer_norm(xs[0], {3, 40, 40}, xs[1], xs[2]); }}};
    }});

// ---------------------------------------------------------------------------------------------
// fused backward vs the differentiable one, and subsets of inputs

TEST_CASE("norms: the fused backward equals the create_graph backward", "[ops][norm][grad]") {
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)> fn;
    Shape x, w;
  };
  const std::vector<Case> cases = {
      {"batch_norm",
       [](const Tensor& x, const Tensor& w, const Tensor& b) {
         return batch_norm(x, w, b, Tensor(), Tensor(), true);
       },
       {4, 3, 2, 5}, {3}},
      {"instance_norm",
       [](const Tensor& x, const Tensor& w, const Tensor& b) { return instance_norm(x, w, b); },
       {2, 3, 7}, {3}},
      {"layer_norm",
       [](const Tensor& x, const Tensor& w, const Tensor& b) { return layer_norm(x, {2, 5}, w, b); },
       {3, 2, 5}, {2, 5}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const Tensor x = uniform64(c.x, -2, 2, 61), w = uniform64(c.w, 0.5, 2, 62),
                 b = uniform64(c.w, -1, 1, 63);
    const Tensor g = uniform64(c.x, -1, 1, 64, false);
    const TensorList fused = grads_of(c.fn(x, w, b), {x, w, b}, g, false);
    const TensorList composite = grads_of(c.fn(x, w, b), {x, w, b}, g, true);
    for (size_t k = 0; k < 3; ++k) {
      INFO("input " << k);
      CHECK(allclose(fused[k], composite[k], 1e-10, 1e-12));
    }
    // Only x, only the weight, only the bias: the same values as with all three.
    CHECK(allclose(grads_of(c.fn(x, w.detach(), b.detach()), {x}, g, false)[0], fused[0], 1e-12, 1e-12));
    CHECK(allclose(grads_of(c.fn(x.detach(), w, b.detach()), {w}, g, false)[0], fused[1], 1e-12, 1e-12));
    CHECK(allclose(grads_of(c.fn(x.detach(), w.detach(), b), {b}, g, false)[0], fused[2], 1e-12, 1e-12));
  }
}

TEST_CASE("batch_norm: float32 gradients match float64", "[ops][norm][grad]") {
  const Tensor x = uniform64({6, 4, 5, 5}, -2, 2, 71), w = uniform64({4}, 0.5, 2, 72),
               b = uniform64({4}, -1, 1, 73);
  const Tensor g = uniform64({6, 4, 5, 5}, -1, 1, 74, false);
  const TensorList ref = grads_of(batch_norm(x, w, b, Tensor(), Tensor(), true), {x, w, b}, g, false);
  Tensor x32 = x.detach().to(DType::float32), w32 = w.detach().to(DType::float32),
         b32 = b.detach().to(DType::float32);
  x32.set_requires_grad(true);
  w32.set_requires_grad(true);
  b32.set_requires_grad(true);
  const TensorList got = grads_of(batch_norm(x32, w32, b32, Tensor(), Tensor(), true), {x32, w32, b32},
                                  g.to(DType::float32), false);
  for (size_t k = 0; k < 3; ++k) CHECK(allclose(got[k], ref[k], 1e-4, 1e-4));
}

// ---------------------------------------------------------------------------------------------
// errors

TEST_CASE("norms: errors name the op and the offending values", "[ops][norm][errors]") {
  const Tensor x = zeros({4, 3, 2});
  CHECK_THAT(error_of([&] { batch_norm(zeros({3}), Tensor(), Tensor(), Tensor(), Tensor(), true); }),
             Contains("batch_norm") && Contains("at least 2 dims"));
  CHECK_THAT(error_of([&] { batch_norm(x, zeros({4}), Tensor(), Tensor(), Tensor(), true); }),
             Contains("batch_norm: weight must have shape [3]") && Contains("got [4]"));
  CHECK_THAT(error_of([&] { batch_norm(x, Tensor(), zeros({3}, TensorOptions{}.with_dtype(DType::float64)),
                                       Tensor(), Tensor(), true); }),
             Contains("batch_norm: bias") && Contains("float32") && Contains("float64"));
  CHECK_THAT(error_of([&] { batch_norm(x, Tensor(), Tensor(), zeros({2}), ones({2}), true); }),
             Contains("running_mean must have shape [3]"));
  CHECK_THAT(error_of([&] { batch_norm(x, Tensor(), Tensor(), zeros({3}), Tensor(), true); }),
             Contains("both"));
  CHECK_THAT(error_of([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); }),
             Contains("batch_norm") && Contains("evaluation mode"));
  CHECK_THAT(error_of([&] { batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true); }),
             Contains("more than 1 value per channel"));
  CHECK_THAT(error_of([&] {
               batch_norm(zeros({4, 3}, TensorOptions{}.with_dtype(DType::int64)), Tensor(), Tensor(),
                          Tensor(), Tensor(), true);
             }),
             Contains("batch_norm") && Contains("int64"));
  CHECK_THAT(error_of([&] { instance_norm(zeros({4, 3})); }),
             Contains("instance_norm") && Contains("at least 3 dims"));
  CHECK_THAT(error_of([&] { instance_norm(zeros({4, 3, 1})); }),
             Contains("instance_norm") && Contains("more than 1 spatial element"));
  CHECK_THAT(error_of([&] { instance_norm(x, zeros({2})); }),
             Contains("instance_norm: weight must have shape [3]"));
  CHECK_THAT(error_of([&] { layer_norm(x, {3}); }),
             Contains("layer_norm: normalized_shape [3]") && Contains("[4, 3, 2]"));
  CHECK_THAT(error_of([&] { layer_norm(x, {3, 2}, zeros({6})); }),
             Contains("layer_norm: weight must have shape [3, 2]"));
  CHECK_THAT(error_of([&] { layer_norm(x, {}); }), Contains("layer_norm") && Contains("empty"));
}
