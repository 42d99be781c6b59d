// Optimizer steps against updates computed by hand, schedules, clipping and resumable state.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/autograd.h"
#include "kernels/unary.h"
#include "nn/optim.h"

using namespace cvg;

namespace {
// A one-element parameter p = 1 with gradient g (set directly, as backward would).
Tensor param(double value = 1.0) {
  return from_vector<double>({value}, {1}, TensorOptions{}.with_dtype(DType::float64).with_requires_grad(true));
}
void set_grad(const Tensor& p, double g) { p.set_grad(from_vector<double>({g}, {1}, p.options())); }
double value(const Tensor& p) { return p.to_vector<double>()[0]; }
}  // namespace

TEST_CASE("SGD: plain, momentum, nesterov and weight decay match hand updates", "[nn][optim]") {
  Tensor p = param();
  nn::SGD plain({p}, {.lr = 0.1});
  set_grad(p, 0.5);
  plain.step();
  CHECK(value(p) == Approx(0.95).epsilon(1e-15));

  Tensor q = param();
  nn::SGD mom({q}, {.lr = 0.1, .momentum = 0.9});
  set_grad(q, 0.5);
  mom.step();  // buf = 0.5, q = 1 - 0.05
  set_grad(q, 0.5);
  mom.step();  // buf = 0.9 * 0.5 + 0.5 = 0.95, q = 0.95 - 0.095
  CHECK(value(q) == Approx(0.855).epsilon(1e-15));

  Tensor r = param();
  nn::SGD nesterov({r}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  set_grad(r, 0.5);
  nesterov.step();  // buf = 0.5, d = 0.5 + 0.45
  CHECK(value(r) == Approx(0.905).epsilon(1e-15));

  Tensor s = param(2.0);
  nn::SGD decay({s}, {.lr = 0.1, .weight_decay = 0.5});
  set_grad(s, 0.0);
  decay.step();  // d = 0 + 0.5 * 2
  CHECK(value(s) == Approx(1.9).epsilon(1e-15));
}

TEST_CASE("Adam, AdamW and RMSprop first steps match hand updates", "[nn][optim]") {
  Tensor p = param();
  nn::Adam adam({p}, {.lr = 0.001});
  set_grad(p, 0.5);
  adam.step();  // m^ = 0.5, v^ = 0.25: step = lr * 0.5 / (0.5 + 1e-8)
  CHECK(value(p) == Approx(1 - 0.001 * 0.5 / (0.5 + 1e-8)).epsilon(1e-14));

  Tensor q = param();
  nn::AdamW adamw({q}, {.lr = 0.001, .weight_decay = 0.01});
  set_grad(q, 0.5);
  adamw.step();  // decay first: 1 - 1e-5, then the Adam step
  CHECK(value(q) == Approx(1 - 1e-5 - 0.001 * 0.5 / (0.5 + 1e-8)).epsilon(1e-14));

  Tensor r = param();
  nn::RMSprop rms({r}, {.lr = 0.01});
  set_grad(r, 0.5);
  rms.step();  // s = 0.01 * 0.25 = 0.0025, d = 0.5 / (0.05 + 1e-8)
  CHECK(value(r) == Approx(1 - 0.01 * 0.5 / (0.05 + 1e-8)).epsilon(1e-14));
}

TEST_CASE("Adam's bias correction uses the step count across steps", "[nn][optim]") {
  Tensor p = param();
  nn::Adam adam({p}, {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.5, .eps = 0});
  double m = 0, v = 0, expected = 1.0;
  const double grads[] = {1.0, -2.0, 0.5};
  for (int t = 1; t <= 3; ++t) {
    const double g = grads[t - 1];
    set_grad(p, g);
    adam.step();
    m = 0.5 * m + 0.5 * g;
    v = 0.5 * v + 0.5 * g * g;
    expected -= 0.1 * (m / (1 - std::pow(0.5, t))) / std::sqrt(v / (1 - std::pow(0.5, t)));
    CHECK(value(p) == Approx(expected).epsilon(1e-14));
  }
}

TEST_CASE("optimizer state round trip continues bit-identically", "[nn][optim]") {
  Tensor a = param(), b = param();
  nn::Adam oa({a}, {.lr = 0.01});
  for (int i = 0; i < 3; ++i) { set_grad(a, 0.3 * (i + 1)); oa.step(); }
  // b starts from a's parameter value and a's optimizer state.
  { NoGradGuard ng; b.copy_(a); }
  nn::Adam ob({b}, {.lr = 0.01});
  ob.load_state_dict(oa.state_dict());
  CHECK(ob.steps() == 3);
  set_grad(a, -0.7); oa.step();
  set_grad(b, -0.7); ob.step();
  CHECK(value(a) == value(b));

  // A damaged state is refused with a cvg::Error that names the key or value, and leaves the
  // optimizer's step count as it was (it was: std::invalid_argument "stoul", or a negative
  // step that made the next Adam step NaN).
  const nn::StateDict good = oa.state_dict();
  auto with = [&](const std::string& key, const Tensor& t) {
    nn::StateDict s = good;
    s[key] = t;
    return s;
  };
  const TensorOptions i64 = TensorOptions{}.with_dtype(DType::int64);
  CHECK_THROWS_WITH(ob.load_state_dict(with("step", from_vector<int64_t>({-5}, {}, i64))),
                    Catch::Contains("'step' must be a whole number >= 0, got -5"));
  CHECK_THROWS_WITH(ob.load_state_dict(with("step", scalar_tensor(2.5))), Catch::Contains("got 2.5"));
  CHECK_THROWS_WITH(ob.load_state_dict(with("x.exp_avg", zeros({1}))), Catch::Contains("bad key 'x.exp_avg'"));
  CHECK_THROWS_WITH(ob.load_state_dict(with("0.", zeros({1}))), Catch::Contains("bad key '0.'"));
  CHECK_THROWS_WITH(ob.load_state_dict(with("99999999999999999999.m", zeros({1}))), Catch::Contains("bad key"));
  CHECK(ob.steps() == 4);
  // ... and its moments: the next step still matches an optimizer that never saw the bad states.
  set_grad(a, 0.2); oa.step();
  set_grad(b, 0.2); ob.step();
  CHECK(value(a) == value(b));
}

TEST_CASE("parameters without gradients are skipped; bad settings are reported", "[nn][optim]") {
  Tensor p = param(), q = param();
  nn::SGD opt({p, q}, {.lr = 1.0});
  set_grad(p, 1.0);
  opt.step();
  CHECK(value(p) == 0.0);
  CHECK(value(q) == 1.0);
  CHECK_THROWS_WITH(nn::SGD({p}, {.lr = -1}), Catch::Contains("learning rate must be >= 0"));
  CHECK_THROWS_WITH(nn::SGD({p}, {.lr = 0.1, .nesterov = true}), Catch::Contains("nesterov needs momentum"));
  CHECK_THROWS_WITH(nn::Adam({p}, {.beta1 = 1.0}), Catch::Contains("betas must be in [0, 1)"));
  Tensor not_leaf = p * 2.0;
  CHECK_THROWS_WITH(nn::SGD({not_leaf}, {}), Catch::Contains("must be a leaf"));
}

TEST_CASE("clip_grad_norm scales the total norm down to max_norm", "[nn][optim]") {
  Tensor p = param(), q = param();
  set_grad(p, 3.0);
  set_grad(q, 4.0);
  const double total = nn::clip_grad_norm({p, q}, 1.0);
  CHECK(total == Approx(5.0));
  CHECK(p.grad().item() == Approx(0.6).epsilon(1e-6));
  CHECK(q.grad().item() == Approx(0.8).epsilon(1e-6));
  set_grad(p, 0.1);
  nn::clip_grad_norm({p}, 1.0);
  CHECK(p.grad().item() == 0.1);
}

TEST_CASE("learning-rate schedules", "[nn][optim]") {
  nn::StepLR step{1.0, 10, 0.5};
  CHECK(step(0) == 1.0);
  CHECK(step(9) == 1.0);
  CHECK(step(10) == 0.5);
  CHECK(step(25) == 0.25);
  nn::CosineLR cosine{1.0, 100, 0.1};
  CHECK(cosine(0) == Approx(1.0));
  CHECK(cosine(50) == Approx(0.55));
  CHECK(cosine(100) == Approx(0.1));
  nn::InverseDecayLR dann{0.01, 100, 10, 0.75};
  CHECK(dann(0) == Approx(0.01));
  CHECK(dann(100) == Approx(0.01 / std::pow(11.0, 0.75)));
}
