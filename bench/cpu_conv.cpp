// CPU benchmarks of the convolutions (kernels/conv.h), float32, wall-clock time (set
// OMP_NUM_THREADS to compare with PyTorch at the same thread count). The same ops in PyTorch:
// bench/torch_ops/conv.py. Names "cpu/<op>/N x Cin x H x W x Cout", padding "same" (k / 2):
//   conv2d_k<k>s<s>            forward with bias
//   conv2d_bwd_k<k>s<s>        forward + backward to x, weight and bias (the training step)
//   conv_transpose2d_k4s2      padding 1: an H x W map upsampled to 2H x 2W, with bias
//   conv2d_dw_k<k>s1[p<p>]     depthwise (groups = Cin = Cout) forward, no bias: the Deep
//                              Matching HOG descriptor's 4 x 4 cell sums (1 x 8 x 563 x 649, p 0:
//                              a 641 x 555 image) and a 3 x 3 layer of 32 channels
// Shapes: the SIMPLE net the flagship app trains on a laptop (3 -> 20 k5 at 70 x 70, then
// 35 x 35 maps: 20 -> 48 k5, 48 -> 64 k3, 64 -> 80 k3, 80 -> 256 k3, 256 -> 30 k1) at batch 16,
// at batch 32 (a batch of image pairs), and at 48 x 48 input (24 x 24 maps), batch 16.
// Counter GFLOP/s: 2 flops per (output, tap, input channel) multiply-add, times 3 for the
// training step (forward, input gradient, weight gradient).
// The "Time" column is wall-clock time; the "CPU" column is the CPU time of the whole process
// (all threads) per iteration, steadier than wall-clock time on a busy machine and showing
// the time threads burn spinning.
#include <benchmark/benchmark.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/conv.h"

namespace {

using namespace cvg;

struct ConvCase {
  int64_t n, cin, h, w, cout, k, s;
};

std::string label(const ConvCase& c) {
  return std::to_string(c.n) + "x" + std::to_string(c.cin) + "x" + std::to_string(c.h) + "x" +
         std::to_string(c.w) + "x" + std::to_string(c.cout);
}
std::string params(const ConvCase& c) {
  return "_k" + std::to_string(c.k) + "s" + std::to_string(c.s);
}

double conv_flops(const ConvCase& c) {
  const int64_t ho = (c.h + 2 * (c.k / 2) - c.k) / c.s + 1, wo = (c.w + 2 * (c.k / 2) - c.k) / c.s + 1;
  return 2.0 * c.n * c.cout * ho * wo * c.cin * c.k * c.k;
}

void set_flops(benchmark::State& state, double flops) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_conv2d(benchmark::State& state, ConvCase c) {
  manual_seed(0);
  const Tensor x = randn({c.n, c.cin, c.h, c.w});
  const Tensor w = randn({c.cout, c.cin, c.k, c.k});
  const Tensor b = randn({c.cout});
  const int64_t p = c.k / 2;
  for (auto _ : state) benchmark::DoNotOptimize(conv2d(x, w, b, {c.s, c.s}, {p, p}).raw_data());
  set_flops(state, conv_flops(c));
}

void bm_conv2d_bwd(benchmark::State& state, ConvCase c) {
  manual_seed(0);
  Tensor x = randn({c.n, c.cin, c.h, c.w});
  Tensor w = randn({c.cout, c.cin, c.k, c.k});
  Tensor b = randn({c.cout});
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const int64_t p = c.k / 2;
  const Tensor gout = randn(conv2d(x.detach(), w.detach(), Tensor(), {c.s, c.s}, {p, p}).shape());
  for (auto _ : state) {
    const TensorList g = grad({conv2d(x, w, b, {c.s, c.s}, {p, p})}, {x, w, b}, {gout});
    benchmark::DoNotOptimize(g[1].raw_data());
  }
  set_flops(state, 3 * conv_flops(c));
}

// Depthwise, stride 1, padding p: one k x k filter per channel (Cout = Cin).
void bm_conv2d_depthwise(benchmark::State& state, ConvCase c, int64_t p) {
  manual_seed(0);
  const Tensor x = randn({c.n, c.cin, c.h, c.w});
  const Tensor w = randn({c.cin, 1, c.k, c.k});
  for (auto _ : state)
    benchmark::DoNotOptimize(conv2d(x, w, Tensor(), {1, 1}, {p, p}, {1, 1}, c.cin).raw_data());
  const int64_t ho = c.h + 2 * p - c.k + 1, wo = c.w + 2 * p - c.k + 1;
  set_flops(state, 2.0 * c.n * c.cin * ho * wo * c.k * c.k);
}

// k = 4, stride 2, padding 1: x [N, Cin, H, W] -> [N, Cout, 2H, 2W].
void bm_conv_transpose2d(benchmark::State& state, ConvCase c) {
  manual_seed(0);
  const Tensor x = randn({c.n, c.cin, c.h, c.w});
  const Tensor w = randn({c.cin, c.cout, 4, 4});
  const Tensor b = randn({c.cout});
  for (auto _ : state)
    benchmark::DoNotOptimize(conv_transpose2d(x, w, b, {2, 2}, {1, 1}).raw_data());
  set_flops(state, 2.0 * c.n * c.cin * c.h * c.w * c.cout * 16);
}

void reg(const std::string& op, const ConvCase& c, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(("cpu/" + op + "/" + label(c)).c_str(), std::move(fn))
      ->UseRealTime()
      ->MeasureProcessCPUTime()
      ->Unit(benchmark::kMillisecond);
}

const bool registered = [] {
  // {Cin, Cout, k} of the SIMPLE net's layers; the first sees the input, the rest half of it.
  const std::array<std::array<int64_t, 3>, 6> layers = {
      {{3, 20, 5}, {20, 48, 5}, {48, 64, 3}, {64, 80, 3}, {80, 256, 3}, {256, 30, 1}}};
  std::vector<ConvCase> simple_net;
  for (const auto [n, size] : {std::array<int64_t, 2>{16, 70}, {32, 70}, {16, 48}})
    for (size_t i = 0; i < layers.size(); ++i) {
      const int64_t hw = i == 0 ? size : size / 2;
      simple_net.push_back({n, layers[i][0], hw, hw, layers[i][1], layers[i][2], 1});
    }
  for (const ConvCase& c : simple_net)
    reg("conv2d" + params(c), c, [c](benchmark::State& s) { bm_conv2d(s, c); });
  for (const ConvCase& c : simple_net)
    reg("conv2d_bwd" + params(c), c, [c](benchmark::State& s) { bm_conv2d_bwd(s, c); });
  const ConvCase hog{1, 8, 563, 649, 8, 4, 1}, dw3{16, 32, 35, 35, 32, 3, 1};
  reg("conv2d_dw_k4s1p0", hog, [hog](benchmark::State& s) { bm_conv2d_depthwise(s, hog, 0); });
  reg("conv2d_dw_k3s1", dw3, [dw3](benchmark::State& s) { bm_conv2d_depthwise(s, dw3, 1); });
  const ConvCase up{16, 64, 35, 35, 32, 4, 2};
  reg("conv_transpose2d_k4s2", up, [up](benchmark::State& s) { bm_conv_transpose2d(s, up); });
  return true;
}();

}  // namespace
