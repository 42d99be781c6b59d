// GPU benchmark of one DANN training step (bench/dann_step.h), timed with CUDA events around
// the whole step (host work between launches included): 64 source + 64 target images with G_d's
// hidden layer at the FC100 and at the 1024-1024 of the run that meets the accuracy gate
// (docs/dann.md), and the source-only step. The target: at most 1.0x PyTorch's step on
// the same GPU (bench/torch_ops/dann.py, through compare_torch.py).
#include <benchmark/benchmark.h>

#include <string>

#include "bench/dann_step.h"
#include "bench/gpu_timer.h"

namespace {

using namespace cvg;

void bm(benchmark::State& state, dann::Mode mode, const std::vector<int64_t>& hidden) {
  bench::DannStep step(mode, 64, kCUDA, hidden);
  bench::time_gpu(state, [&] { step.step(); }, 0, 0);
}

const bool registered = [] {
  bench::reg_gpu("cuda/dann_step/64x3x28x28", [](benchmark::State& s) { bm(s, dann::Mode::dann, {100}); });
  bench::reg_gpu("cuda/dann_step_d1024/64x3x28x28",
                 [](benchmark::State& s) { bm(s, dann::Mode::dann, {1024, 1024}); });
  bench::reg_gpu("cuda/dann_source_only_step/64x3x28x28",
                 [](benchmark::State& s) { bm(s, dann::Mode::source_only, {100}); });
  return true;
}();

}  // namespace
