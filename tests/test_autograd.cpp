// The autograd engine (core/autograd.h): gradient summation over shared subgraphs, accumulation
// into leaves, retain_graph and release of saved tensors, create_graph second derivatives
// (checked against finite differences of first derivatives), grad(), grad modes, detach,
// version-counter checks and deep graphs.
#include <catch2/catch.hpp>

#include <pthread.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

const TensorOptions kF64 = TensorOptions{}.with_dtype(DType::float64);

Tensor leaf(const std::vector<double>& v, const Shape& shape) {
  return tensor(v, shape, kF64.with_requires_grad(true));
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Runs fn on a new thread with the given stack size and waits for it.
void run_with_stack(size_t bytes, const std::function<void()>& fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, bytes);
  pthread_t th;
  auto trampoline = [](void* p) -> void* {
    (*static_cast<const std::function<void()>*>(p))();
    return nullptr;
  };
  REQUIRE(pthread_create(&th, &attr, trampoline, const_cast<std::function<void()>*>(&fn)) == 0);
  pthread_join(th, nullptr);
  pthread_attr_destroy(&attr);
}

void check_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-12) {
  REQUIRE(t.defined());
  const std::vector<double> got = values(t);
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(expected[i]).margin(tol).epsilon(tol));
  }
}

// f(x) = x^3 sin(x), elementwise, summed.
Tensor cubic_sin(const Tensor& x) { return sum(pow(x, 3.0) * sin(x)); }
// First derivative of cubic_sin at x (one grad() call, no graph kept).
std::vector<double> cubic_sin_grad(double x) {
  Tensor t = leaf({x}, {1});
  return values(grad({cubic_sin(t)}, {t})[0]);
}

}  // namespace

TEST_CASE("autograd: a tensor used on two paths receives the sum of both", "[autograd]") {
  Tensor x = leaf({1.0, 2.0, -3.0}, {3});
  // y = sum(x*x + sin(x)): x feeds mul twice and sin once; dy/dx = 2x + cos(x).
  sum(x * x + sin(x)).backward();
  check_values(x.grad(), {2 + std::cos(1.0), 4 + std::cos(2.0), -6 + std::cos(-3.0)});

  // A shared intermediate: h = exp(x) is used by both branches of h*h + h.
  Tensor z = leaf({0.5, -1.0}, {2});
  Tensor h = exp(z);
  sum(h * h + h).backward();
  // d/dz (e^{2z} + e^z) = 2 e^{2z} + e^z
  check_values(z.grad(), {2 * std::exp(1.0) + std::exp(0.5), 2 * std::exp(-2.0) + std::exp(-1.0)});
}

TEST_CASE("autograd: gradients accumulate into leaves across backward calls", "[autograd]") {
  Tensor x = leaf({1.0, -2.0}, {2});
  sum(x * 3.0).backward();
  check_values(x.grad(), {3.0, 3.0});
  sum(x * x).backward();
  check_values(x.grad(), {3.0 + 2.0, 3.0 - 4.0});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x * x).backward();
  check_values(x.grad(), {2.0, -4.0});
}

TEST_CASE("autograd: leaf gradients are dense tensors of their own", "[autograd]") {
  // sum's backward expands a 0-d gradient (stride 0), and add's backward hands the same tensor
  // to both inputs: a leaf must still get a dense gradient no other tensor aliases, or an
  // in-place update of one .grad (an optimizer step) would corrupt another.
  Tensor a = leaf({1.0, 2.0, 3.0}, {3});
  Tensor b = leaf({4.0, 5.0, 6.0}, {3});
  sum(a + b).backward();
  REQUIRE(a.grad().is_contiguous());
  REQUIRE(b.grad().is_contiguous());
  CHECK(a.grad().storage() != b.grad().storage());
  {
    NoGradGuard ng;
    a.grad().fill_(7.0);
  }
  check_values(a.grad(), {7.0, 7.0, 7.0});
  check_values(b.grad(), {1.0, 1.0, 1.0});

  // The gradient the caller passes in is not adopted as the leaf's grad either.
  Tensor x = leaf({1.0, 2.0}, {2});
  Tensor seed = tensor({0.5, 0.25}, {2}, kF64);
  x.clone().backward(seed);
  seed.fill_(100.0);
  check_values(x.grad(), {0.5, 0.25});

  // grad()'s results too: dense, and sharing memory with neither each other nor the seed.
  const TensorList g = grad({sum(a + b)}, {a, b});
  REQUIRE(g[0].is_contiguous());
  CHECK(g[0].storage()->nbytes() >= 3 * sizeof(double));
  CHECK(g[0].storage() != g[1].storage());
  Tensor seed2 = tensor({0.5, 0.25}, {2}, kF64);
  const Tensor gx = grad({x.clone()}, {x}, {seed2})[0];
  CHECK(gx.storage() != seed2.storage());
  // An input named twice gets two tensors.
  const TensorList twice = grad({sum(a * 3.0)}, {a, a});
  check_values(twice[1], {3.0, 3.0, 3.0});
  CHECK(twice[0].storage() != twice[1].storage());
}

TEST_CASE("autograd: retain_graph", "[autograd]") {
  Tensor x = leaf({0.0, 1.0}, {2});
  SECTION("a second backward without it is an error naming retain_graph") {
    Tensor y = sum(exp(x));
    y.backward();
    const std::string msg = error_of([&] { y.backward(); });
    CHECK_THAT(msg, Contains("retain_graph"));
    CHECK_THAT(msg, Contains("second time"));
    CHECK(y.grad_fn()->released());
  }
  SECTION("with it, the second backward runs and accumulates") {
    Tensor y = sum(exp(x));
    y.backward(Tensor(), /*retain_graph=*/true);
    CHECK_FALSE(y.grad_fn()->released());
    y.backward();
    check_values(x.grad(), {2.0, 2.0 * std::exp(1.0)});
    CHECK(y.grad_fn()->released());
  }
}

TEST_CASE("autograd: saved tensors are released after backward", "[autograd]") {
  Tensor a = leaf({1.0, 2.0}, {2});
  Tensor b = tensor({3.0, 4.0}, {2}, kF64);  // saved by mul for a's gradient
  Tensor y = sum(a * b);
  const std::weak_ptr<TensorImpl> saved = b.impl_ptr();
  const long before = b.impl_ptr().use_count();
  CHECK(before >= 2);  // our handle plus the SavedTensor in mul's node
  y.backward();
  CHECK(b.impl_ptr().use_count() == 1);
  b = Tensor();
  CHECK(saved.expired());
  check_values(a.grad(), {3.0, 4.0});
}

TEST_CASE("autograd: create_graph gives second derivatives", "[autograd]") {
  const double h = 1e-5;
  const std::vector<double> xs = {0.3, -1.2, 2.0};
  Tensor x = leaf(xs, {3});
  const Tensor g = grad({cubic_sin(x)}, {x}, {}, {.create_graph = true})[0];
  REQUIRE(g.requires_grad());
  const Tensor g2 = grad({sum(g)}, {x})[0];  // f is elementwise, so this is the diagonal f''
  const std::vector<double> got = values(g2);
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i];
    const double analytic = 6 * v * std::sin(v) + 6 * v * v * std::cos(v) - v * v * v * std::sin(v);
    const double fd = (cubic_sin_grad(v + h)[0] - cubic_sin_grad(v - h)[0]) / (2 * h);
    INFO("x = " << v);
    CHECK(got[i] == Approx(analytic).epsilon(1e-12));
    CHECK(got[i] == Approx(fd).epsilon(1e-7));
  }

  // The same through backward(create_graph=true): x.grad carries a graph of its own.
  Tensor z = leaf({0.7}, {1});
  cubic_sin(z).backward(Tensor(), false, /*create_graph=*/true);
  Tensor gz = z.grad();
  REQUIRE(gz.grad_fn() != nullptr);
  z.zero_grad();
  sum(gz).backward();
  const double v = 0.7;
  check_values(z.grad(), {6 * v * std::sin(v) + 6 * v * v * std::cos(v) - v * v * v * std::sin(v)});
}

TEST_CASE("autograd: mixed partial derivative through create_graph", "[autograd]") {
  // f(x, y) = sum(exp(x * y) * x); df/dx = exp(xy)(1 + xy); d2f/dxdy = exp(xy) x (2 + xy).
  auto f = [](const Tensor& x, const Tensor& y) { return sum(exp(x * y) * x); };
  auto dfdx = [&](double xv, double yv) {
    Tensor x = leaf({xv}, {1}), y = leaf({yv}, {1});
    return values(grad({f(x, y)}, {x})[0])[0];
  };
  const double xv = 0.8, yv = -0.6, h = 1e-5;
  Tensor x = leaf({xv}, {1}), y = leaf({yv}, {1});
  const Tensor gx = grad({f(x, y)}, {x}, {}, {.create_graph = true})[0];
  const TensorList gxy = grad({sum(gx)}, {x, y});
  const double analytic = std::exp(xv * yv) * xv * (2 + xv * yv);
  const double fd = (dfdx(xv, yv + h) - dfdx(xv, yv - h)) / (2 * h);
  CHECK(values(gxy[1])[0] == Approx(analytic).epsilon(1e-12));
  CHECK(values(gxy[1])[0] == Approx(fd).epsilon(1e-7));
  // d2f/dx2 = exp(xy) y (2 + xy)
  CHECK(values(gxy[0])[0] == Approx(std::exp(xv * yv) * yv * (2 + xv * yv)).epsilon(1e-12));
}

TEST_CASE("autograd: grad() with allow_unused, without touching .grad", "[autograd]") {
  Tensor x = leaf({1.0, 2.0}, {2});
  Tensor unused = leaf({5.0}, {1});
  Tensor y = sum(x * x);
  const std::string msg = error_of([&] { grad({y}, {x, unused}); });
  CHECK_THAT(msg, Contains("grad: input 1"));
  CHECK_THAT(msg, Contains("allow_unused"));

  Tensor y2 = sum(x * x);
  const TensorList gs = grad({y2}, {x, unused}, {}, {.allow_unused = true});
  REQUIRE(gs.size() == 2);
  check_values(gs[0], {2.0, 4.0});
  CHECK_FALSE(gs[1].defined());
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(unused.grad().defined());

  // An existing .grad is left exactly as it was.
  sum(x * 10.0).backward();
  grad({sum(x * x)}, {x});
  check_values(x.grad(), {10.0, 10.0});
}

TEST_CASE("autograd: grad() with respect to a non-leaf and with grad_outputs", "[autograd]") {
  Tensor x = leaf({1.0, -2.0, 3.0}, {3});
  Tensor h = x * 2.0;  // non-leaf
  Tensor y = sum(h * h);
  const TensorList gs = grad({y}, {h, x}, {}, {.retain_graph = true});
  check_values(gs[0], {4.0, -8.0, 12.0});   // 2h
  check_values(gs[1], {8.0, -16.0, 24.0});  // 2h * 2
  CHECK_FALSE(x.grad().defined());

  // Vector-Jacobian product of a non-scalar output.
  Tensor v = tensor({1.0, 0.0, -1.0}, {3}, kF64);
  const TensorList gv = grad({h * h}, {x}, {v});
  check_values(gv[0], {8.0 * 1.0, 0.0, -8.0 * 3.0});  // 8x * v

  // The gradient at a non-leaf is what arrives at it: its own node does not run, so the
  // default (retain_graph false) leaves it usable for a later backward through h.
  Tensor e = exp(x);
  grad({sum(e)}, {e});
  CHECK_FALSE(e.grad_fn()->released());
  sum(e * 3.0).backward();
  check_values(x.grad(), {3.0 * std::exp(1.0), 3.0 * std::exp(-2.0), 3.0 * std::exp(3.0)});
}

TEST_CASE("autograd: grad modes, detach and requires_grad propagation", "[autograd]") {
  Tensor a = leaf({1.0, 2.0}, {2});
  Tensor b = tensor({3.0, 4.0}, {2}, kF64);
  CHECK(GradMode::enabled());
  {
    NoGradGuard ng;
    CHECK_FALSE(GradMode::enabled());
    Tensor y = a * b;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    {
      GradModeGuard on(true);
      CHECK((a * b).grad_fn() != nullptr);
    }
    CHECK_FALSE(GradMode::enabled());
  }
  CHECK(GradMode::enabled());

  CHECK((a * b).requires_grad());
  CHECK((a * b).grad_fn()->name == "mul");
  CHECK_FALSE((b * b).requires_grad());
  CHECK(exp(a).requires_grad());
  // Comparisons give bool tensors, which never carry a gradient.
  Tensor c = gt(a, b);
  CHECK(c.dtype() == DType::bool_);
  CHECK_FALSE(c.requires_grad());

  Tensor d = (a * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  Tensor da = a.detach();
  CHECK(da.storage() == a.storage());
  CHECK(da.raw_data() == a.raw_data());
  {
    NoGradGuard ng;
    da.fill_(9.0);  // shares storage: visible through a
  }
  check_values(a, {9.0, 9.0});
}

TEST_CASE("autograd: requires_grad can only change on floating leaves", "[autograd]") {
  Tensor a = leaf({1.0}, {1});
  Tensor y = a * 2.0;
  const std::string msg = error_of([&] { y.set_requires_grad(false); });
  CHECK_THAT(msg, Contains("set_requires_grad"));
  CHECK_THAT(msg, Contains("leaf"));
  CHECK_THAT(msg, Contains("'mul_scalar'"));
  Tensor i = zeros({2}, TensorOptions{}.with_dtype(DType::int64));
  const std::string msg2 = error_of([&] { i.set_requires_grad(true); });
  CHECK_THAT(msg2, Contains("only floating"));
  CHECK_THAT(msg2, Contains("int64"));
  Tensor f = zeros({2});
  f.set_requires_grad(true);
  CHECK(f.requires_grad());
  f.set_requires_grad(false);
  CHECK_FALSE(f.requires_grad());
}

TEST_CASE("autograd: in-place change of a saved tensor is caught at backward", "[autograd]") {
  Tensor a = leaf({1.0, 2.0}, {2});
  Tensor b = tensor({3.0, 4.0}, {2}, kF64);
  Tensor y = a * b;  // mul saves b for a's gradient
  CHECK(b.version() == 0);
  b.fill_(1.0);      // b does not require grad, so the in-place op itself is allowed
  CHECK(b.version() == 1);
  const std::string msg = error_of([&] { sum(y).backward(); });
  CHECK_THAT(msg, Contains("mul backward"));
  CHECK_THAT(msg, Contains("modified in place"));
  CHECK_THAT(msg, Contains("version 1"));
  CHECK_THAT(msg, Contains("saved at version 0"));

  // Through a view: the version counter lives in the storage, shared by all views.
  Tensor p = leaf({1.0, 2.0}, {2});
  Tensor q = tensor({3.0, 4.0}, {2}, kF64);
  Tensor yq = exp(p) * q;
  q.detach().zero_();
  CHECK_THAT(error_of([&] { sum(yq).backward(); }), Contains("modified in place"));

  // A tensor that requires grad refuses in-place changes while grad mode is on.
  const std::string msg3 = error_of([&] { a.fill_(0.0); });
  CHECK_THAT(msg3, Contains("fill_"));
  CHECK_THAT(msg3, Contains("requires grad"));
}

TEST_CASE("autograd: a deep chain does not overflow the stack", "[autograd]") {
  // Building, running and destroying a 100000-node chain must all stay iterative. It runs on
  // a thread with a 1 MiB stack (threads and some platforms get less than the usual 8 MiB
  // main stack); a recursive walk or destructor needs several frames per node and crashes.
  const int depth = 100000;
  Tensor x = leaf({0.5}, {1});
  std::vector<double> grad_after_backward;
  bool chain_requires_grad = false;
  std::string error;
  run_with_stack(1 << 20, [&] {
    try {
      {
        Tensor y = x;
        for (int i = 0; i < depth; ++i) y = y + x;
        sum(y).backward();
        grad_after_backward = values(x.grad());
      }
      // A chain that is never run is destroyed as well (the last handle owns all nodes), and
      // one whose nodes hold saved tensors (mul saves its inputs).
      {
        Tensor y = x;
        for (int i = 0; i < depth; ++i) y = y * 1.0;
        chain_requires_grad = y.requires_grad();
      }
      {
        Tensor y = x;
        for (int i = 0; i < depth / 4; ++i) y = y * x;
      }
      // Nodes with two owners while the chain is freed: both slots of one add (y + y), and a
      // residual step whose input feeds the add and the tanh (h + f(h)). A destructor that
      // frees only children it alone owns leaves these to nested destructors (it crashed here).
      {
        Tensor y = x;
        for (int i = 0; i < depth; ++i) y = (y + y) * 0.5;
      }
      {
        Tensor y = x;
        for (int i = 0; i < depth; ++i) y = y + tanh(y) * 1e-6;
        sum(y).backward();
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  CHECK(error.empty());
  CHECK(grad_after_backward == std::vector<double>{static_cast<double>(depth + 1)});
  CHECK(values(x.grad())[0] > static_cast<double>(depth + 1));  // the residual chain added its part
  CHECK(chain_requires_grad);
}

TEST_CASE("autograd: backward argument checks", "[autograd]") {
  Tensor x = leaf({1.0, 2.0}, {2});
  Tensor y = x * 2.0;
  const std::string msg = error_of([&] { y.backward(); });
  CHECK_THAT(msg, Contains("backward"));
  CHECK_THAT(msg, Contains("single-element"));
  CHECK_THAT(msg, Contains("[2]"));
  const std::string msg2 = error_of([&] { y.backward(ones({3}, kF64)); });
  CHECK_THAT(msg2, Contains("grad_outputs[0] has shape [3]"));
  // The seed gradient must match the output's dtype: a float32 seed would otherwise flow
  // into a float64 leaf's .grad.
  const std::string msg3 = error_of([&] { y.backward(ones({2})); });
  CHECK_THAT(msg3, Contains("grad_outputs[0] has dtype float32"));
  CHECK_THAT(msg3, Contains("float64"));
  CHECK_FALSE(x.grad().defined());
  Tensor c = tensor({1.0}, {1}, kF64);
  CHECK_THAT(error_of([&] { c.backward(); }), Contains("does not require grad"));
}

TEST_CASE("autograd: each input gets its gradient in its own dtype", "[autograd]") {
  // float32 * float64 computes in float64; the float32 input's gradient comes back float32.
  Tensor a = tensor({1.0, 2.0}, {2}, TensorOptions{}.with_requires_grad(true));
  Tensor b = leaf({3.0, 4.0}, {2});
  Tensor y = sum(a * b);
  CHECK(y.dtype() == DType::float64);
  y.backward();
  REQUIRE(a.grad().dtype() == DType::float32);
  CHECK(a.grad().to_vector<float>() == std::vector<float>{3.0f, 4.0f});
  REQUIRE(b.grad().dtype() == DType::float64);
  check_values(b.grad(), {1.0, 2.0});

  // A hand-written node whose backward returns an integer gradient is an error naming it.
  Tensor x = leaf({1.0, 2.0}, {2});
  Tensor out = record("bad_op", Tensor::empty({2}, kF64), {x}, [](const Tensor& g, const Node&) {
    return TensorList{g.detach().to(DType::int64)};
  });
  const std::string msg = error_of([&] { out.backward(ones({2}, kF64)); });
  CHECK_THAT(msg, Contains("bad_op backward: gradient for input 0 has dtype int64"));
  CHECK_THAT(msg, Contains("expected float64"));
}

TEST_CASE("autograd: saved outputs re-attach for double backward", "[autograd]") {
  // tanh saves its output; d2/dx2 tanh = -2 tanh (1 - tanh^2).
  Tensor x = leaf({0.4, -1.1}, {2});
  const Tensor g = grad({sum(tanh(x))}, {x}, {}, {.create_graph = true})[0];
  const Tensor g2 = grad({sum(g)}, {x})[0];
  std::vector<double> expected;
  for (double v : {0.4, -1.1}) {
    const double t = std::tanh(v);
    expected.push_back(-2 * t * (1 - t * t));
  }
  check_values(g2, expected);
}
