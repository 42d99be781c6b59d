// The fused CUDA optimizer updates (nn/optim_cuda.cu) against the CPU loop (nn/optim.cpp), which
// share their per-element math (nn/optim_math.h): the same float32 parameters and the same
// sequence of gradients, a few steps of every optimizer and option on each device, then the
// parameters and every state tensor compared. Sizes are not multiples of a block (the last
// block is partial) and one spans many blocks; one parameter gets no gradient (skipped).
#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "nn/optim.h"

using namespace cvg;

namespace {

using MakeOpt = std::function<std::unique_ptr<nn::Optimizer>(std::vector<Tensor>)>;

const std::vector<Shape> kShapes = {{7}, {33, 5}, {1000, 257}, {3}};

// Runs `steps` steps on copies of the same parameters on `device`; the last parameter never
// has a gradient. Returns the optimizer (its params and state are on `device`).
std::unique_ptr<nn::Optimizer> run(const MakeOpt& make, Device device, int steps) {
  manual_seed(21);
  std::vector<Tensor> params;
  for (const Shape& s : kShapes) {
    Tensor p = randn(s).to(device).detach();
    p.set_requires_grad(true);
    params.push_back(p);
  }
  std::unique_ptr<nn::Optimizer> opt = make(params);
  for (int k = 0; k < steps; ++k) {
    for (size_t i = 0; i + 1 < params.size(); ++i)
      params[i].set_grad(randn(kShapes[i]).to(device));
    opt->step();
  }
  return opt;
}

void check_same(const MakeOpt& make, const std::string& what) {
  INFO(what);
  const auto cpu = run(make, kCPU, 4);
  const auto gpu = run(make, kCUDA, 4);
  for (size_t i = 0; i < cpu->params().size(); ++i) {
    INFO("parameter " << i);
    CHECK(gpu->params()[i].device() == kCUDA);
    // The same float32 formula on both devices; only fused multiply-adds (nvcc contracts) and
    // sqrt rounding may differ: a few ulps after 4 steps.
    CHECK(max_abs_diff(gpu->params()[i].to(kCPU), cpu->params()[i]) < 1e-5);
  }
  const nn::StateDict sc = cpu->state_dict(), sg = gpu->state_dict();
  CHECK(sc.size() == sg.size());
  for (const auto& [name, t] : sc) {
    INFO("state " << name);
    REQUIRE(sg.count(name) == 1);
    CHECK(max_abs_diff(sg.at(name).to(kCPU).to(t.dtype()), t) < 1e-5);
  }
}

}  // namespace

TEST_CASE("optimizers: CUDA fused updates match the CPU loop", "[cuda][optim]") {
  check_same([](auto p) { return std::make_unique<nn::SGD>(p, nn::SgdOptions{.lr = 0.1}); }, "SGD");
  check_same([](auto p) {
    return std::make_unique<nn::SGD>(p, nn::SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2});
  }, "SGD momentum + weight decay");
  check_same([](auto p) {
    return std::make_unique<nn::SGD>(p, nn::SgdOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
  }, "SGD nesterov");
  check_same([](auto p) { return std::make_unique<nn::Adam>(p, nn::AdamOptions{.lr = 1e-2, .weight_decay = 5e-4}); },
             "Adam + L2 weight decay");
  check_same([](auto p) { return std::make_unique<nn::AdamW>(p, nn::AdamOptions{.lr = 1e-2, .weight_decay = 1e-2}); },
             "AdamW");
  check_same([](auto p) {
    return std::make_unique<nn::RMSprop>(p, nn::RmspropOptions{.lr = 1e-2, .weight_decay = 1e-3, .momentum = 0.5});
  }, "RMSprop + momentum");
}

TEST_CASE("clip_grad_norm: CUDA gradients scale like the CPU ones", "[cuda][optim]") {
  manual_seed(22);
  std::vector<Tensor> cpu, gpu;
  for (const Shape& s : kShapes) {
    Tensor p = zeros(s);
    p.set_requires_grad(true);
    p.set_grad(randn(s));
    Tensor q = zeros(s, TensorOptions{}.with_device(kCUDA));
    q.set_requires_grad(true);
    q.set_grad(p.grad().to(kCUDA));
    cpu.push_back(p);
    gpu.push_back(q);
  }
  const double nc = nn::clip_grad_norm(cpu, 1.0), ng = nn::clip_grad_norm(gpu, 1.0);
  CHECK(ng == Approx(nc).epsilon(1e-5));
  for (size_t i = 0; i < cpu.size(); ++i)
    CHECK(max_abs_diff(gpu[i].grad().to(kCPU), cpu[i].grad()) < 1e-6);
}

// Adam batches up to 24 parameters of one dtype per launch (nn/optim_cuda.cu): 30 parameters of
// sizes around the block chunk (2048 elements), one empty, take two launches, and a float64
// parameter between float32 ones splits the runs; every parameter must still match the CPU.
TEST_CASE("optimizers: CUDA Adam's batched launches match the CPU loop", "[cuda][optim]") {
  auto run_adam = [](Device device) {
    manual_seed(22);
    std::vector<Tensor> params;
    for (int i = 0; i < 30; ++i) {
      const int64_t n = i == 7 ? 0 : 2047 + 13 * i;
      Tensor p = randn({n}).to(i == 12 ? DType::float64 : DType::float32).to(device).detach();
      p.set_requires_grad(true);
      params.push_back(p);
    }
    nn::Adam opt(params, nn::AdamOptions{.lr = 1e-2, .weight_decay = 5e-4});
    for (int k = 0; k < 3; ++k) {
      for (Tensor& p : params) p.set_grad(randn(p.shape()).to(p.dtype()).to(device));
      opt.step();
    }
    return params;
  };
  const std::vector<Tensor> cpu = run_adam(kCPU), gpu = run_adam(kCUDA);
  for (size_t i = 0; i < cpu.size(); ++i) {
    INFO("parameter " << i);
    CHECK(max_abs_diff(gpu[i].to(kCPU), cpu[i]) < 1e-5);
  }
}
