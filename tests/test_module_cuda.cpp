// Module::to(kCUDA) (nn/module.h): every parameter moves, keeps its requires_grad, and an
// optimizer built from the moved parameters updates the tensors the module computes with (the
// order cvg-deepmatch train got wrong: it trained stale CPU copies on the GPU).
#include <catch2/catch.hpp>

#include <memory>

#include "core/rng.h"
#include "kernels/reduce.h"
#include "nn/layers.h"
#include "nn/optim.h"

using namespace cvg;

TEST_CASE("Module::to(kCUDA) keeps requires_grad; an optimizer made after it trains the module",
          "[cuda][nn]") {
  manual_seed(3);
  nn::Linear frozen(3, 4), trained(4, 2);
  frozen.weight.set_requires_grad(false);
  frozen.to(kCUDA);
  trained.to(kCUDA);
  CHECK(frozen.weight.device().is_cuda());
  CHECK_FALSE(frozen.weight.requires_grad());
  CHECK(frozen.bias.requires_grad());
  CHECK(trained.weight.requires_grad());
  const Tensor before = trained.weight.to(kCPU);
  nn::Adam opt(trained.parameters(), nn::AdamOptions{.lr = 0.1});
  const Tensor y = sum(trained.forward(frozen.forward(randn({5, 3}).to(kCUDA))));
  y.backward();
  CHECK_FALSE(frozen.weight.grad().defined());
  opt.step();
  CHECK(max_abs_diff(trained.weight.to(kCPU), before) > 0.05);  // Adam's first step: ~lr
}
