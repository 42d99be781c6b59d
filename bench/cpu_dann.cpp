// CPU benchmark of one DANN training step (models/dann/model.h, apps/dann): 64 source + 64
// target images of 3 x 28 x 28 through G_f, the label loss on the source half, the domain loss
// behind the gradient reversal layer on all 128, backward, SGD with momentum 0.9. Also the
// source-only step (64 images, no domain branch). The same steps in PyTorch:
// bench/torch_ops/dann.py (compare_torch.py times both on the same shapes).
#include <benchmark/benchmark.h>

#include <string>

#include "core/rng.h"
#include "models/dann/model.h"
#include "nn/optim.h"

namespace {

using namespace cvg;

void bm_dann_step(benchmark::State& state, dann::Mode mode, int64_t n, Device device) {
  manual_seed(5);
  dann::DannNet net({0.45, 0.45, 0.45});
  net.to(device);
  nn::SGD opt(net.parameters(), nn::SgdOptions{.lr = 0.01, .momentum = 0.9});
  const Tensor xs = rand({n, 3, 28, 28}).to(device), xt = rand({n, 3, 28, 28}).to(device);
  const Tensor ys = randint(0, 10, {n}).to(device);
  for (auto _ : state) {
    opt.zero_grad();
    const dann::StepLoss loss = dann::training_loss(net, mode, xs, ys, xt, ys, 0.5);
    loss.total.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.total.item());
  }
}

void register_all() {
  for (dann::Mode mode : {dann::Mode::dann, dann::Mode::source_only}) {
    const std::string op = mode == dann::Mode::dann ? "dann_step" : "dann_source_only_step";
    const std::string name = "cpu/" + op + "/64x3x28x28";
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
      bm_dann_step(s, mode, 64, kCPU);
    })->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
  }
}

const bool registered = (register_all(), true);

}  // namespace
