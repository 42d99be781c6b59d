// nn::Module: registration and naming, state dicts, device/dtype moves, modes, summary.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/reduce.h"
#include "nn/layers.h"

using namespace cvg;

namespace {
struct TwoLayer : nn::Module {
  TwoLayer() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(3, 4));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(4, 2, /*bias=*/false));
    running = zeros({2});
    register_buffer("running", &running);
  }
  Tensor forward(const Tensor& x) override { return fc2->forward(relu_(fc1->forward(x))); }
  static Tensor relu_(const Tensor& x) { return nn::ReLU().forward(x); }
  std::shared_ptr<nn::Linear> fc1, fc2;
  Tensor running;
};
}  // namespace

TEST_CASE("Module registers nested parameters and buffers with dotted names", "[nn]") {
  TwoLayer m;
  const auto params = m.named_parameters();
  REQUIRE(params.size() == 3);
  CHECK(params[0].first == "fc1.weight");
  CHECK(params[1].first == "fc1.bias");
  CHECK(params[2].first == "fc2.weight");
  CHECK(m.num_parameters() == 3 * 4 + 4 + 4 * 2);
  const auto buffers = m.named_buffers();
  REQUIRE(buffers.size() == 1);
  CHECK(buffers[0].first == "running");
  for (auto& [_, p] : params) CHECK(p.requires_grad());
  CHECK(m.summary().find("total parameters: 24") != std::string::npos);
  CHECK(m.summary().find("fc2: Linear(in=4, out=2, bias=false)") != std::string::npos);
}

TEST_CASE("state_dict round trip restores outputs exactly", "[nn]") {
  manual_seed(3);
  TwoLayer a;
  manual_seed(4);
  TwoLayer b;
  const Tensor x = randn({5, 3});
  CHECK_FALSE(allclose(a.forward(x), b.forward(x)));
  b.load_state_dict(a.state_dict());
  CHECK(max_abs_diff(a.forward(x), b.forward(x)) == 0.0);
}

TEST_CASE("load_state_dict reports missing, unexpected and mismatched entries", "[nn]") {
  TwoLayer m;
  auto sd = m.state_dict();
  auto missing = sd;
  missing.erase("fc1.bias");
  CHECK_THROWS_WITH(m.load_state_dict(missing), Catch::Contains("missing entry 'fc1.bias'"));
  CHECK_NOTHROW(m.load_state_dict(missing, /*strict=*/false));
  auto extra = sd;
  extra["bogus"] = zeros({1});
  CHECK_THROWS_WITH(m.load_state_dict(extra), Catch::Contains("unexpected entry 'bogus'"));
  auto wrong = sd;
  wrong["fc2.weight"] = zeros({3, 3});
  CHECK_THROWS_WITH(m.load_state_dict(wrong), Catch::Contains("'fc2.weight' has shape [3, 3]"));
  auto wrong_dtype = sd;
  wrong_dtype["running"] = zeros({2}, TensorOptions{}.with_dtype(DType::float64));
  CHECK_THROWS_WITH(m.load_state_dict(wrong_dtype), Catch::Contains("dtype float64"));
}

TEST_CASE("Module::to(dtype) converts parameters and keeps them trainable leaves", "[nn]") {
  TwoLayer m;
  m.to(DType::float64);
  for (auto& [_, p] : m.named_parameters()) {
    CHECK(p.dtype() == DType::float64);
    CHECK(p.is_leaf());
    CHECK(p.requires_grad());
  }
  const Tensor y = sum(m.forward(randn({2, 3}, TensorOptions{}.with_dtype(DType::float64))));
  y.backward();
  CHECK(m.fc1->weight.grad().defined());
}

// A frozen parameter stays frozen through to(): apps freeze groups before or after moving the
// model, and a conversion that re-enabled them would compute (and accumulate) their gradients.
TEST_CASE("Module::to(dtype) keeps each parameter's requires_grad", "[nn]") {
  TwoLayer m;
  m.fc1->weight.set_requires_grad(false);
  m.to(DType::float64);
  CHECK_FALSE(m.fc1->weight.requires_grad());
  CHECK(m.fc1->weight.dtype() == DType::float64);
  CHECK(m.fc2->weight.requires_grad());
  const Tensor y = sum(m.forward(randn({2, 3}, TensorOptions{}.with_dtype(DType::float64))));
  y.backward();
  CHECK_FALSE(m.fc1->weight.grad().defined());
  CHECK(m.fc2->weight.grad().defined());
}

TEST_CASE("train and eval propagate to submodules; bad inputs are named", "[nn]") {
  TwoLayer m;
  m.eval();
  CHECK_FALSE(m.fc1->is_training());
  m.train();
  CHECK(m.fc2->is_training());
  CHECK_THROWS_WITH(m.fc1->forward(zeros({2, 5})), Catch::Contains("Linear: expected input with last dim 3"));
  CHECK_THROWS_WITH(nn::Linear(0, 3), Catch::Contains("Linear: sizes must be positive"));
}

TEST_CASE("Sequential runs its layers in order and names them by index", "[nn]") {
  nn::Sequential s({std::make_shared<nn::Linear>(2, 3), std::make_shared<nn::Tanh>(),
                    std::make_shared<nn::Linear>(3, 1)});
  CHECK(s.named_parameters()[0].first == "0.weight");
  CHECK(s.named_parameters()[2].first == "2.weight");
  CHECK(s.forward(zeros({4, 2})).shape() == Shape{4, 1});
}
