// CPU benchmarks of the sampling family (kernels/sample.h, kernels/tps.h), float32. The same ops
// in PyTorch: bench/torch_ops/sample.py. Names "cpu/<op>/N x C x H x W" with the output the
// input's size unless the op says otherwise:
//   grid_sample          bilinear, zeros padding, a random grid (about [-1.5, 1.5]) of H x W
//   grid_sample_bwd      forward + backward to input and grid (the training case)
//   grid_sample_nearest  nearest, zeros padding
//   flow_warp            a random flow of a few pixels
//   interpolate_bilinear2x / interpolate_nearest2x : output 2H x 2W
// Shapes: the landmarks app's warps (16 RGB images of 100 x 100) and a feature map (4 x 32 x
// 64 x 64).
#include <benchmark/benchmark.h>

#include <array>
#include <functional>
#include <string>

#include "bench/bench_common.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/sample.h"
#include "kernels/unary.h"

namespace {

using namespace cvg;

using Dims = bench::Dims4;

Tensor random_grid(const Dims& d) { return mul(randn({d[0], d[2], d[3], 2}), 0.5); }

void bm_grid_sample(benchmark::State& state, Dims d, GridSampleMode mode) {
  manual_seed(0);
  const Tensor x = randn({d[0], d[1], d[2], d[3]});
  const Tensor grid = random_grid(d);
  for (auto _ : state) benchmark::DoNotOptimize(grid_sample(x, grid, mode).raw_data());
}

void bm_grid_sample_bwd(benchmark::State& state, Dims d) {
  manual_seed(0);
  Tensor x = randn({d[0], d[1], d[2], d[3]});
  Tensor grid = random_grid(d);
  const Tensor gout = randn({d[0], d[1], d[2], d[3]});
  x.set_requires_grad(true);
  grid.set_requires_grad(true);
  for (auto _ : state) {
    const TensorList g = grad({grid_sample(x, grid)}, {x, grid}, {gout});
    benchmark::DoNotOptimize(g[1].raw_data());
  }
}

void bm_flow_warp(benchmark::State& state, Dims d) {
  manual_seed(0);
  const Tensor x = randn({d[0], d[1], d[2], d[3]});
  const Tensor flow = mul(randn({d[0], 2, d[2], d[3]}), 3.0);
  for (auto _ : state) benchmark::DoNotOptimize(flow_warp(x, flow).raw_data());
}

void bm_interpolate(benchmark::State& state, Dims d, InterpMode mode) {
  manual_seed(0);
  const Tensor x = randn({d[0], d[1], d[2], d[3]});
  for (auto _ : state)
    benchmark::DoNotOptimize(interpolate(x, {2 * d[2], 2 * d[3]}, mode).raw_data());
}

void reg(const std::string& op, const Dims& d, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(("cpu/" + op + "/" + bench::dims_label(d)).c_str(), std::move(fn))
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  for (const Dims& d : {Dims{16, 3, 100, 100}, Dims{4, 32, 64, 64}}) {
    reg("grid_sample", d, [d](benchmark::State& s) { bm_grid_sample(s, d, GridSampleMode::Bilinear); });
    reg("grid_sample_bwd", d, [d](benchmark::State& s) { bm_grid_sample_bwd(s, d); });
    reg("grid_sample_nearest", d,
        [d](benchmark::State& s) { bm_grid_sample(s, d, GridSampleMode::Nearest); });
    reg("flow_warp", d, [d](benchmark::State& s) { bm_flow_warp(s, d); });
    reg("interpolate_bilinear2x", d,
        [d](benchmark::State& s) { bm_interpolate(s, d, InterpMode::Bilinear); });
    reg("interpolate_nearest2x", d,
        [d](benchmark::State& s) { bm_interpolate(s, d, InterpMode::Nearest); });
  }
  return true;
}();

}  // namespace
