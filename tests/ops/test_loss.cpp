// Tests of the losses (kernels/loss.h). Hand cases use logits log 1, log 2, log 3 (softmax
// 1/6, 2/6, 3/6) so that every expected value is a short expression in log 2 and log 3;
// gradchecks keep logits in [-3, 3], |x - y| away from 0 (l1) and from beta (smooth_l1).
// TEST_CASEs pin down ignore_index and class-weight semantics and the error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/loss.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

const double l2 = std::log(2.0), l3 = std::log(3.0);

Tensor i64(const std::vector<int64_t>& v, const Shape& shape) {
  return from_vector<int64_t>(v, shape, TensorOptions{}.with_dtype(DType::int64));
}
// Random class indices in [0, C), deterministic per seed (drawn from uniform64).
Tensor classes(const Shape& shape, int64_t C, uint64_t seed) {
  const std::vector<double> u = uniform64(shape, 0, static_cast<double>(C), seed, false).to_vector<double>();
  std::vector<int64_t> v(u.size());
  for (size_t i = 0; i < u.size(); ++i) v[i] = std::min<int64_t>(C - 1, static_cast<int64_t>(u[i]));
  return i64(v, shape);
}
// Pairs (x, y) with |x - y| >= margin and |x - y| not within margin of `avoid`.
TensorList regression_pair(const Shape& shape, double avoid, double margin, uint64_t seed) {
  Tensor x = uniform64(shape, -2, 2, seed);
  std::vector<double> d = uniform64(shape, -2, 2, seed + 1, false).to_vector<double>();
  for (double& v : d) {
    if (std::fabs(v) < margin) v = v < 0 ? -margin : margin;
    if (std::fabs(std::fabs(v) - avoid) < margin) v += v < 0 ? -2 * margin : 2 * margin;
  }
  const std::vector<double> xv = x.to_vector<double>();
  std::vector<double> y(d.size());
  for (size_t i = 0; i < d.size(); ++i) y[i] = xv[i] - d[i];
  return {x, t64(y, shape)};
}

// logits [[0, log 2, log 3], [log 3, log 2, 0]]: softmax [[1,2,3]/6, [3,2,1]/6].
Tensor ce_logits() { return t64({0, l2, l3, l3, l2, 0}, {2, 3}); }

OpFn ce(Reduction r, bool use_weight = false, int64_t ignore = -100) {
  return [=](const TensorList& xs) {
    return cross_entropy(xs[0], xs[1], use_weight ? xs[2] : Tensor(), ignore, r);
  };
}

}  // namespace

CVG_REGISTER_OP(OpSpec{"cross_entropy", ce(Reduction::mean), [] {
  std::vector<OpSample> s;
  // targets [1, 0]: -log(2/6) = log 3 and -log(3/6) = log 2.
  s.push_back({"hand mean", {ce_logits(), i64({1, 0}, {2})}, t64({(l3 + l2) / 2}, {}, false), true, nullptr});
  s.push_back({"hand sum", {ce_logits(), i64({1, 0}, {2})}, t64({l3 + l2}, {}, false), true, ce(Reduction::sum)});
  s.push_back({"hand none", {ce_logits(), i64({1, 0}, {2})}, t64({l3, l2}, {2}, false), true, ce(Reduction::none)});
  // weight [1, 2, 3]: (2 log 3 + 1 log 2) / (2 + 1)
  s.push_back({"hand weighted mean", {ce_logits(), i64({1, 0}, {2}), t64({1, 2, 3}, {3}, false)},
               t64({(2 * l3 + l2) / 3}, {}, false), true, ce(Reduction::mean, true)});
  // The ignored second target neither adds loss nor counts in the mean.
  s.push_back({"hand ignore_index", {ce_logits(), i64({1, -100}, {2})}, t64({l3}, {}, false), true, nullptr});
  s.push_back({"hand ignore_index none", {ce_logits(), i64({1, 7}, {2})}, t64({l3, 0}, {2}, false), true,
               ce(Reduction::none, false, 7)});
  // Unbatched [C] logits with a 0-d target: -log(3/6).
  s.push_back({"hand unbatched", {t64({0, l2, l3}, {3}), i64({2}, {})}, t64({l2}, {}, false), true, nullptr});
  // Probability targets: -(0.5 log(1/6) + 0.5 log(3/6)) for row 0, -log(2/6) for row 1.
  s.push_back({"hand probability targets", {ce_logits(), t64({0.5, 0, 0.5, 0, 1, 0}, {2, 3}, false)},
               t64({(0.5 * (std::log(6.0) + l2) + l3) / 2}, {}, false), true, nullptr});
  s.push_back({"random 4x5", {uniform64({4, 5}, -3, 3, 1), classes({4}, 5, 2)}, Tensor(), true, nullptr});
  s.push_back({"spatial 2x3x4x2", {uniform64({2, 3, 4, 2}, -3, 3, 3), classes({2, 4, 2}, 3, 4)}, Tensor(),
               true, ce(Reduction::none)});
  s.push_back({"weighted, ignored, 5x4",
               {uniform64({5, 4}, -3, 3, 5), i64({0, 3, -100, 1, 3}, {5}), t64({0.5, 1, 2, 3}, {4}, false)},
               Tensor(), true, ce(Reduction::mean, true)});
  s.push_back({"probability targets 3x4", {uniform64({3, 4}, -3, 3, 6), uniform64({3, 4}, 0, 1, 7)}, Tensor(),
               true, ce(Reduction::sum)});
  return s;
}});

CVG_REGISTER_OP(OpSpec{"nll_loss",
                       [](const TensorList& xs) { return nll_loss(xs[0], xs[1]); }, [] {
  auto weighted = [](Reduction r) {
    return [r](const TensorList& xs) { return nll_loss(xs[0], xs[1], xs[2], -100, r); };
  };
  std::vector<OpSample> s;
  const Tensor x = t64({-1, -2, -3, -4, -5, -6}, {2, 3});
  s.push_back({"hand mean", {x, i64({2, 0}, {2})}, t64({3.5}, {}, false), true, nullptr});
  // weight [1, 2, 3]: (3 * 3 + 1 * 4) / (3 + 1)
  s.push_back({"hand weighted mean", {x, i64({2, 0}, {2}), t64({1, 2, 3}, {3}, false)},
               t64({13.0 / 4}, {}, false), true, weighted(Reduction::mean)});
  s.push_back({"hand weighted none", {x, i64({2, 0}, {2}), t64({1, 2, 3}, {3}, false)},
               t64({9, 4}, {2}, false), true, weighted(Reduction::none)});
  s.push_back({"hand int32 target", {x, i64({1, 1}, {2}).to(DType::int32)}, t64({3.5}, {}, false), true,
               nullptr});
  s.push_back({"random 3x4x5", {uniform64({3, 4, 5}, -3, 0, 8), classes({3, 5}, 4, 9)}, Tensor(), true,
               nullptr});
  return s;
}});

CVG_REGISTER_OP(OpSpec{"mse_loss", [](const TensorList& xs) { return mse_loss(xs[0], xs[1]); }, [] {
  std::vector<OpSample> s;
  // d = [0, 2, -2]
  s.push_back({"hand mean", {t64({1, 2, 3}, {3}), t64({1, 0, 5}, {3})}, t64({8.0 / 3}, {}, false), true, nullptr});
  s.push_back({"hand none", {t64({1, 2, 3}, {3}), t64({1, 0, 5}, {3})}, t64({0, 4, 4}, {3}, false), true,
               [](const TensorList& xs) { return mse_loss(xs[0], xs[1], Reduction::none); }});
  s.push_back({"random 3x4 sum", regression_pair({3, 4}, 0, 0, 10), Tensor(), true,
               [](const TensorList& xs) { return mse_loss(xs[0], xs[1], Reduction::sum); }});
  return s;
}});

CVG_REGISTER_OP(OpSpec{"l1_loss", [](const TensorList& xs) { return l1_loss(xs[0], xs[1]); }, [] {
  std::vector<OpSample> s;
  s.push_back({"hand mean", {t64({1, 2, 3}, {3}), t64({1, 0, 5}, {3})}, t64({4.0 / 3}, {}, false), false, nullptr});
  s.push_back({"random 3x4", regression_pair({3, 4}, 0, 0.05, 11), Tensor(), true, nullptr});
  return s;
}});

CVG_REGISTER_OP(OpSpec{"smooth_l1_loss",
                       [](const TensorList& xs) { return smooth_l1_loss(xs[0], xs[1], Reduction::none); }, [] {
  std::vector<OpSample> s;
  // beta 1: |d| = 0.5 -> 0.5 * 0.25; |d| = 3 -> 3 - 0.5
  s.push_back({"hand beta 1", {t64({0, 0.5, -3}, {3}), t64({0, 0, 0}, {3})}, t64({0, 0.125, 2.5}, {3}, false),
               false, nullptr});
  // beta 2: 0.5 * 0.25 / 2 and 3 - 1
  s.push_back({"hand beta 2 sum", {t64({0.5, 3}, {2}), t64({0, 0}, {2})}, t64({0.0625 + 2}, {}, false), true,
               [](const TensorList& xs) { return smooth_l1_loss(xs[0], xs[1], Reduction::sum, 2.0); }});
  s.push_back({"random 4x4, both sides of beta", regression_pair({4, 4}, 1.0, 0.05, 12), Tensor(), true, nullptr});
  s.push_back({"random beta 0.5 mean", regression_pair({3, 5}, 0.5, 0.05, 13), Tensor(), true,
               [](const TensorList& xs) { return smooth_l1_loss(xs[0], xs[1], Reduction::mean, 0.5); }});
  return s;
}});

CVG_REGISTER_OP(OpSpec{"binary_cross_entropy_with_logits",
                       [](const TensorList& xs) { return binary_cross_entropy_with_logits(xs[0], xs[1]); }, [] {
  auto with_pos = [](const TensorList& xs) {
    return binary_cross_entropy_with_logits(xs[0], xs[1], Tensor(), Reduction::mean, xs[2]);
  };
  auto weighted_none = [](const TensorList& xs) {
    return binary_cross_entropy_with_logits(xs[0], xs[1], xs[2], Reduction::none, xs[3]);
  };
  std::vector<OpSample> s;
  // (x=0, t=1): log 2; (x=log 3, t=0): log(1 + 3) = 2 log 2.
  s.push_back({"hand", {t64({0, l3}, {2}), t64({1, 0}, {2}, false)}, t64({1.5 * l2}, {}, false), true, nullptr});
  s.push_back({"hand pos_weight 2", {t64({0, l3}, {2}), t64({1, 0}, {2}, false), t64({2}, {1}, false)},
               t64({2 * l2}, {}, false), true, with_pos});
  // Huge logits of the right sign cost log1p(e^-100), of the wrong sign 100; nothing overflows.
  s.push_back({"hand huge logits", {t64({-100, 100, -100, 100}, {4}), t64({0, 1, 1, 0}, {4}, false)},
               t64({std::log1p(std::exp(-100.0)), std::log1p(std::exp(-100.0)), 100, 100}, {4}, false), true,
               [](const TensorList& xs) {
                 return binary_cross_entropy_with_logits(xs[0], xs[1], Tensor(), Reduction::none);
               }});
  s.push_back({"random 3x4 soft targets", {uniform64({3, 4}, -3, 3, 14), uniform64({3, 4}, 0, 1, 15)}, Tensor(),
               true, nullptr});
  s.push_back({"random weight and pos_weight", {uniform64({3, 4}, -3, 3, 16), uniform64({3, 4}, 0, 1, 17, false),
                                                 uniform64({3, 1}, 0.5, 2, 18, false), uniform64({4}, 0.5, 3, 19, false)},
               Tensor(), true, weighted_none});
  return s;
}});

CVG_REGISTER_OP(OpSpec{"kl_div", [](const TensorList& xs) { return kl_div(xs[0], xs[1], Reduction::sum); }, [] {
  std::vector<OpSample> s;
  // p = [0.5, 0.5, 0], q = [0.25, 0.25, 0.5]: 0.5 log 2 twice, and 0 where p = 0.
  const Tensor logq = t64({std::log(0.25), std::log(0.25), std::log(0.5)}, {1, 3});
  s.push_back({"hand sum, zero target", {logq, t64({0.5, 0.5, 0}, {1, 3}, false)}, t64({l2}, {}, false), true,
               nullptr});
  s.push_back({"hand mean", {logq, t64({0.5, 0.5, 0}, {1, 3}, false)}, t64({l2 / 3}, {}, false), true,
               [](const TensorList& xs) { return kl_div(xs[0], xs[1], Reduction::mean); }});
  s.push_back({"hand batchmean", {logq, t64({0.5, 0.5, 0}, {1, 3}, false)}, t64({l2}, {}, false), true,
               [](const TensorList& xs) { return kl_div(xs[0], xs[1], Reduction::batchmean); }});
  // log_target: p = [0.5, 0.25, 0.25] given as logs; 0.5 log 2 + 0 + 0.25 log(0.5)
  s.push_back({"hand log_target", {logq, t64({std::log(0.5), std::log(0.25), std::log(0.25)}, {1, 3}, false)},
               t64({0.25 * l2}, {}, false), true,
               [](const TensorList& xs) { return kl_div(xs[0], xs[1], Reduction::sum, true); }});
  s.push_back({"random 3x4, target differentiated", {uniform64({3, 4}, -3, 0, 20), uniform64({3, 4}, 0.1, 1, 21)},
               Tensor(), true, nullptr});
  s.push_back({"random batchmean log_target", {uniform64({4, 3}, -3, 0, 22), uniform64({4, 3}, -3, 0, 23)},
               Tensor(), true,
               [](const TensorList& xs) { return kl_div(xs[0], xs[1], Reduction::batchmean, true); }});
  return s;
}});

TEST_CASE("cross_entropy: ignore_index and class weights follow PyTorch", "[ops][loss]") {
  const TensorOptions f64 = TensorOptions{}.with_dtype(DType::float64);
  Tensor logits = randn({6, 4}, f64).set_requires_grad(true);
  const Tensor target = i64({0, 3, -100, 2, -100, 1}, {6});
  const Tensor w = tensor({0.5, 1, 2, 4}, {4}, f64);
  const Tensor loss = cross_entropy(logits, target, w);
  // Reference: sum over kept rows of w[t] * -log_softmax[n, t], divided by sum of those w[t].
  const std::vector<double> lp = log_softmax(logits, 1).to_vector<double>();
  const std::vector<double> wv = w.to_vector<double>();
  const std::vector<int64_t> tv = target.to_vector<int64_t>();
  double num = 0, den = 0;
  for (int n = 0; n < 6; ++n) {
    if (tv[n] == -100) continue;
    num += -wv[tv[n]] * lp[n * 4 + tv[n]];
    den += wv[tv[n]];
  }
  CHECK(loss.item() == Approx(num / den).epsilon(1e-12));
  // Ignored rows receive no gradient; kept rows get w[t] (softmax - onehot) / den.
  loss.backward();
  const std::vector<double> g = logits.grad().to_vector<double>();
  const std::vector<double> p = softmax(logits, 1).to_vector<double>();
  for (int n = 0; n < 6; ++n)
    for (int c = 0; c < 4; ++c) {
      const double expected = tv[n] == -100 ? 0.0 : wv[tv[n]] * (p[n * 4 + c] - (c == tv[n])) / den;
      CHECK(g[n * 4 + c] == Approx(expected).margin(1e-12));
    }
  // Every target ignored: mean is 0 / 0 = NaN, sum is 0 (PyTorch's answers).
  const Tensor all_ignored = i64({-100, -100}, {2});
  CHECK(std::isnan(cross_entropy(randn({2, 3}), all_ignored).item()));
  CHECK(cross_entropy(randn({2, 3}), all_ignored, Tensor(), -100, Reduction::sum).item() == 0.0);
}

// Mean reduction with no weight to divide by (every target ignored, or class weights that are 0
// or cancel): the loss is 0 / 0 = NaN (or s / 0 = inf) as in PyTorch, and the gradient is 0
// (it was NaN everywhere, and one such batch made every parameter NaN at the next step).
// PyTorch 1.13 gives the same loss in every case and the zero gradient when every target is
// ignored; with weights [0, 0, 1] its gradient is NaN and with [1, -1, 1] it is +-inf (the
// documented difference: here 0 whenever the total weight is 0). Both the fused [N, C] kernel,
// with and without create_graph, and the nll_loss composition ([N, C] and [N, C, d]) are checked.
TEST_CASE("nll_loss / cross_entropy mean with zero total weight: NaN loss, zero gradient",
          "[ops][loss]") {
  struct Case {
    const char* what;
    Shape shape;  // of the logits, filled from {0.2, -1, 3, 1.5, 0, 2}
    std::vector<int64_t> target;
    Shape target_shape;
    std::vector<double> weight;  // empty: none
    bool fused;                  // cross_entropy (fused when [N, C]) or nll_loss(log_softmax)
    bool create_graph;
    double loss;                 // NaN or inf, as PyTorch
  };
  const double nan = std::nan(""), inf = HUGE_VAL;
  const std::vector<Case> cases = {
      {"fused, all ignored", {2, 3}, {-100, -100}, {2}, {}, true, false, nan},
      {"fused create_graph, all ignored", {2, 3}, {-100, -100}, {2}, {}, true, true, nan},
      {"nll_loss, all ignored", {2, 3}, {-100, -100}, {2}, {}, false, false, nan},
      {"nll_loss create_graph, all ignored", {2, 3}, {-100, -100}, {2}, {}, false, true, nan},
      {"[N, C, d] all ignored", {1, 3, 2}, {-100, -100}, {1, 2}, {}, true, false, nan},
      {"custom ignore_index 1, all ignored", {2, 3}, {1, 1}, {2}, {}, true, false, nan},
      {"fused, zero class weights", {2, 3}, {0, 1}, {2}, {0, 0, 1}, true, false, nan},
      {"nll_loss, zero class weights", {2, 3}, {0, 1}, {2}, {0, 0, 1}, false, false, nan},
      {"fused, cancelling class weights", {2, 3}, {0, 1}, {2}, {1, -1, 1}, true, false, inf},
      {"nll_loss, cancelling class weights", {2, 3}, {0, 1}, {2}, {1, -1, 1}, false, false, inf},
  };
  const TensorOptions f64 = TensorOptions{}.with_dtype(DType::float64);
  for (const Case& c : cases) {
    INFO(c.what);
    const Tensor x = reshape(tensor({0.2, -1.0, 3.0, 1.5, 0.0, 2.0}, {6}, f64), c.shape)
                         .detach()
                         .set_requires_grad(true);
    const Tensor t = i64(c.target, c.target_shape);
    const Tensor w = c.weight.empty() ? Tensor() : tensor(c.weight, {3}, f64);
    const int64_t ignore = std::string(c.what).find("ignore_index 1") != std::string::npos ? 1 : -100;
    const Tensor loss = c.fused ? cross_entropy(x, t, w, ignore)
                                : nll_loss(log_softmax(x, 1), t, w, ignore);
    if (std::isnan(c.loss)) CHECK(std::isnan(loss.item()));
    else CHECK(loss.item() == c.loss);
    GradOptions opts;
    opts.create_graph = c.create_graph;
    const Tensor g = grad({loss}, {x}, {}, opts)[0];
    for (double v : g.to_vector<double>()) CHECK(v == 0.0);
    if (c.create_graph) {
      // The gradient is a graph too, and differentiating it again gives 0 as well.
      GradOptions unused;
      unused.allow_unused = true;
      const Tensor gg = grad({sum(g)}, {x}, {}, unused)[0];
      if (gg.defined())
        for (double v : gg.to_vector<double>()) CHECK(v == 0.0);
    }
  }
}

TEST_CASE("cross_entropy equals nll_loss of log_softmax, also for spatial inputs", "[ops][loss]") {
  const Tensor x = randn({2, 5, 3, 4});
  const Tensor t = randint(0, 5, {2, 3, 4}, TensorOptions{}.with_dtype(DType::int64));
  CHECK(allclose(cross_entropy(x, t, Tensor(), -100, Reduction::none),
                 nll_loss(log_softmax(x, 1), t, Tensor(), -100, Reduction::none), 1e-6, 1e-6));
  // [N, C, H, W] equals the flattened [N*H*W, C] problem.
  const Tensor flat = reshape(permute(x, {0, 2, 3, 1}), {24, 5});
  CHECK(allclose(cross_entropy(x, t), cross_entropy(flat, reshape(t, {24})), 1e-6, 1e-6));
}

TEST_CASE("cross_entropy: the fused [N, C] kernel matches the nll_loss(log_softmax) composition",
          "[ops][loss]") {
  const TensorOptions f64 = TensorOptions{}.with_dtype(DType::float64);
  for (int64_t C : {1, 7, 3000}) {
    INFO("C = " << C);
    const int64_t N = 9;
    Tensor x = (randn({N, C}, f64) * 3.0).detach().set_requires_grad(true);
    Tensor t = randint(0, C, {N}, TensorOptions{}.with_dtype(DType::int64));
    std::vector<int64_t> tv = t.to_vector<int64_t>();
    tv[4] = -100;
    t = i64(tv, {N});
    const Tensor w = rand({C}, f64) + 0.5;
    for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum}) {
      INFO("reduction " << reduction_name(r));
      const Tensor fused = cross_entropy(x, t, w, -100, r);
      const Tensor composed = nll_loss(log_softmax(x, 1), t, w, -100, r);
      CHECK(allclose(fused, composed, 1e-12, 1e-12));
      const Tensor gout = randn(fused.shape(), f64);
      const Tensor g1 = grad({fused}, {x}, {gout})[0];
      const Tensor g2 = grad({composed}, {x}, {gout})[0];
      CHECK(allclose(g1, g2, 1e-12, 1e-12));
      // The create_graph branch of the fused backward gives the same first derivative.
      const Tensor g3 = grad({cross_entropy(x, t, w, -100, r)}, {x}, {gout}, {.create_graph = true})[0];
      CHECK(g3.requires_grad());
      CHECK(allclose(g3, g1, 1e-12, 1e-12));
    }
  }
  // The class weight is saved: changed in place between forward and a create_graph backward
  // (which reads it), it is an error, not a gradient with the new weight.
  {
    Tensor x = randn({3, 4}, f64).set_requires_grad(true);
    Tensor w = rand({4}, f64) + 0.5;
    const Tensor loss = cross_entropy(x, i64({0, 3, 1}, {3}), w, -100, Reduction::sum);
    w.fill_(2.0);
    CHECK_THROWS_WITH(grad({loss}, {x}, {}, {.create_graph = true}), Contains("modified in place"));
  }
  // int32 targets and float32 logits take the same path.
  const Tensor x32 = randn({5, 4});
  const Tensor t32 = i64({0, 3, 1, 2, 2}, {5}).to(DType::int32);
  CHECK(allclose(cross_entropy(x32, t32), nll_loss(log_softmax(x32, 1), t32), 1e-6, 1e-6));
}

TEST_CASE("binary_cross_entropy_with_logits: huge logits stay finite, gradient is sigmoid(x) - t",
          "[ops][loss]") {
  Tensor x = tensor({-1000, -20, 0, 20, 1000}, {5}).set_requires_grad(true);
  const Tensor t = tensor({1, 0, 0.3, 1, 0}, {5});
  const Tensor l = binary_cross_entropy_with_logits(x, t, Tensor(), Reduction::sum);
  CHECK(std::isfinite(l.item()));
  l.backward();
  CHECK(allclose(x.grad(), sigmoid(x.detach()) - t, 1e-6, 1e-7));
}

TEST_CASE("losses: errors name the op and the offending value", "[ops][loss][errors]") {
  const Tensor x = zeros({2, 3});
  REQUIRE_THROWS_WITH(cross_entropy(x, i64({0, 3}, {2})),
                      Contains("cross_entropy") && Contains("target 3") && Contains("3 classes"));
  REQUIRE_THROWS_WITH(nll_loss(x, i64({-1, 0}, {2})), Contains("nll_loss") && Contains("target -1"));
  // A value equal to a custom ignore_index is fine, the default -100 then is not.
  CHECK_NOTHROW(cross_entropy(x, i64({-1, 0}, {2}), Tensor(), -1));
  REQUIRE_THROWS_WITH(cross_entropy(x, i64({-100, 0}, {2}), Tensor(), -1), Contains("target -100"));
  REQUIRE_THROWS_WITH(cross_entropy(x, i64({0, 1, 2}, {3})), Contains("does not match"));
  REQUIRE_THROWS_WITH(cross_entropy(x, i64({0, 1}, {2}), zeros({4})), Contains("weight must be [3]"));
  REQUIRE_THROWS_WITH(nll_loss(x, zeros({2})), Contains("nll_loss") && Contains("float32"));
  REQUIRE_THROWS_WITH(mse_loss(zeros({2, 3}), zeros({3})), Contains("mse_loss") && Contains("same shape"));
  REQUIRE_THROWS_WITH(l1_loss(zeros({3}), zeros({3}), Reduction::batchmean), Contains("batchmean"));
  REQUIRE_THROWS_WITH(smooth_l1_loss(zeros({3}), zeros({3}), Reduction::mean, -1.0), Contains("beta"));
  REQUIRE_THROWS_WITH(binary_cross_entropy_with_logits(zeros({2, 3}), zeros({2, 3}), Tensor(),
                                                       Reduction::mean, zeros({4})),
                      Contains("pos_weight"));
  Tensor w = ones({3}).set_requires_grad(true);
  REQUIRE_THROWS_WITH(cross_entropy(x, i64({0, 1}, {2}), w), Contains("weight.detach()"));
}
