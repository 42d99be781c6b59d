// CPU benchmark of one DANN training step (bench/dann_step.h): 64 source + 64 target images,
// G_d with the FC100 hidden layer; also the source-only step (64 images, no domain
// branch). The same steps in PyTorch: bench/torch_ops/dann.py (compare_torch.py times both on
// the same shapes; `python3 bench/torch_ops/dann.py` alternates them in rounds).
#include <benchmark/benchmark.h>

#include <string>

#include "bench/dann_step.h"

namespace {

using namespace cvg;

void register_all() {
  for (dann::Mode mode : {dann::Mode::dann, dann::Mode::source_only}) {
    const std::string op = mode == dann::Mode::dann ? "dann_step" : "dann_source_only_step";
    const std::string name = "cpu/" + op + "/64x3x28x28";
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
      bench::DannStep step(mode, 64, kCPU);
      for (auto _ : s) benchmark::DoNotOptimize(step.step().item());
    })->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
  }
}

const bool registered = (register_all(), true);

}  // namespace
