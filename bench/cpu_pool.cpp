// CPU benchmarks of the pooling family (kernels/pool.h), float32. The same ops in PyTorch:
// bench/torch_ops/pool.py. Names "cpu/<op>/N x C x H x W" (the input's size):
//   max_pool2d_k2s2        2 x 2 windows, stride 2, values and int32 switches
//   max_pool2d_k3s2        3 x 3 windows, stride 2, padding 1 (overlapping windows)
//   max_pool2d_k2s2_bwd    forward + backward to the input (the training case)
//   max_unpool2d_k2s2      scatter of the pooled values back to H x W at the switches
//   max_unpool2d_k2s2_bwd  its backward (a gather at the switches)
//   avg_pool2d_k2s2        2 x 2 average
// Shapes: the DANN net's first pool (64 + 64 images of 32 x 24 x 24), the landmark detector's
// first pool (16 x 20 x 70 x 70) and a larger feature map (8 x 64 x 112 x 112).
#include <benchmark/benchmark.h>

#include <array>
#include <functional>
#include <string>

#include "bench/bench_common.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/pool.h"

namespace {

using namespace cvg;

using Dims = bench::Dims4;

Tensor input(const Dims& d) {
  manual_seed(0);
  return randn({d[0], d[1], d[2], d[3]});
}

void bm_max_pool(benchmark::State& state, Dims d, int64_t k, int64_t s, int64_t p) {
  const Tensor x = input(d);
  for (auto _ : state)
    benchmark::DoNotOptimize(max_pool2d_with_indices(x, {k, k}, PoolSize2{s, s}, {p, p}).values.raw_data());
}

void bm_max_pool_bwd(benchmark::State& state, Dims d) {
  Tensor x = input(d);
  x.set_requires_grad(true);
  const Tensor gout = randn({d[0], d[1], d[2] / 2, d[3] / 2});
  for (auto _ : state) benchmark::DoNotOptimize(grad({max_pool2d(x, {2, 2})}, {x}, {gout})[0].raw_data());
}

void bm_max_unpool(benchmark::State& state, Dims d) {
  const PooledWithSwitches p = max_pool2d_with_indices(input(d), {2, 2});
  for (auto _ : state)
    benchmark::DoNotOptimize(max_unpool2d(p.values, p.switches, {d[2], d[3]}).raw_data());
}

void bm_max_unpool_bwd(benchmark::State& state, Dims d) {
  const PooledWithSwitches p = max_pool2d_with_indices(input(d), {2, 2});
  const Tensor gout = randn({d[0], d[1], d[2], d[3]});
  for (auto _ : state) benchmark::DoNotOptimize(max_unpool2d_backward(gout, p.switches).raw_data());
}

void bm_avg_pool(benchmark::State& state, Dims d) {
  const Tensor x = input(d);
  for (auto _ : state) benchmark::DoNotOptimize(avg_pool2d(x, {2, 2}).raw_data());
}

void reg(const std::string& op, const Dims& d, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(("cpu/" + op + "/" + bench::dims_label(d)).c_str(), std::move(fn))
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  for (const Dims& d : {Dims{128, 32, 24, 24}, Dims{16, 20, 70, 70}, Dims{8, 64, 112, 112}}) {
    reg("max_pool2d_k2s2", d, [d](benchmark::State& s) { bm_max_pool(s, d, 2, 2, 0); });
    reg("max_pool2d_k3s2", d, [d](benchmark::State& s) { bm_max_pool(s, d, 3, 2, 1); });
    reg("max_pool2d_k2s2_bwd", d, [d](benchmark::State& s) { bm_max_pool_bwd(s, d); });
    reg("max_unpool2d_k2s2", d, [d](benchmark::State& s) { bm_max_unpool(s, d); });
    reg("max_unpool2d_k2s2_bwd", d, [d](benchmark::State& s) { bm_max_unpool_bwd(s, d); });
    reg("avg_pool2d_k2s2", d, [d](benchmark::State& s) { bm_avg_pool(s, d); });
  }
  return true;
}();

}  // namespace
