// CPU benchmarks of the normalisation family (kernels/norm.h, dropout.h, spatial.h), wall-clock
// timed like bench_cpu.cpp. Names "cpu/<op>/<dims>", dims N x C x H x W (float32); the PyTorch
// side is bench/torch_ops/norm.py. Ops:
//   batch_norm_train      training forward with running-stat update
//   batch_norm_train_bwd  the same forward, then gradients to x, weight and bias
//   batch_norm_eval       eval forward (running stats)
//   instance_norm, layer_norm (over C x H x W, elementwise affine) forward
//   layer_norm_bwd        forward + gradients to x, weight and bias
//   dropout               p = 0.5, training
//   spatial_softmax, soft_argmax (pixels), soft_argmax_bwd (forward + gradient to x)
// batch_norm runs at the flagship app's shapes (N = 16, 35 x 35, C in {20, 48, 64, 80, 256}).
#include <benchmark/benchmark.h>

#include <functional>
#include <string>

#include "core/autograd.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/dropout.h"
#include "kernels/norm.h"
#include "kernels/spatial.h"
#include "kernels/unary.h"

namespace {

using namespace cvg;

// Returns the op to time, given the dims; inputs are built once, outside the timed loop.
using Maker = std::function<std::function<void()>(const Shape&)>;

Tensor leaf(const Shape& shape) {
  Tensor t = randn(shape);
  t.set_requires_grad(true);
  return t;
}

void bm(benchmark::State& state, const Maker& make, const Shape& dims) {
  manual_seed(3);
  const std::function<void()> fn = make(dims);
  for (auto _ : state) fn();
  const double n = static_cast<double>(numel_of(dims));
  state.counters["Melem/s"] = benchmark::Counter(n * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
}

std::string label(const std::string& op, const Shape& dims) {
  std::string s = "cpu/" + op + "/";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

void reg(const std::string& op, const Shape& dims, Maker make) {
  benchmark::RegisterBenchmark(label(op, dims).c_str(),
                               [make, dims](benchmark::State& st) { bm(st, make, dims); })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  for (int64_t C : {20, 48, 64, 80, 256}) {
    const Shape dims{16, C, 35, 35};
    reg("batch_norm_train", dims, [](const Shape& d) {
      const Tensor x = randn(d), w = randn({d[1]}), b = randn({d[1]});
      const Tensor rm = zeros({d[1]}), rv = ones({d[1]});
      return [=] { benchmark::DoNotOptimize(batch_norm(x, w, b, rm, rv, true)); };
    });
    reg("batch_norm_train_bwd", dims, [](const Shape& d) {
      const Tensor x = leaf(d), w = leaf({d[1]}), b = leaf({d[1]}), g = randn(d);
      const Tensor rm = zeros({d[1]}), rv = ones({d[1]});
      return [=] {
        const Tensor y = batch_norm(x, w, b, rm, rv, true);
        benchmark::DoNotOptimize(grad({y}, {x, w, b}, {g}));
      };
    });
    reg("batch_norm_eval", dims, [](const Shape& d) {
      const Tensor x = randn(d), w = randn({d[1]}), b = randn({d[1]});
      const Tensor rm = randn({d[1]}), rv = rand({d[1]}) + 0.5;
      return [=] { benchmark::DoNotOptimize(batch_norm(x, w, b, rm, rv, false)); };
    });
  }
  for (const Shape& dims : {Shape{16, 64, 35, 35}, Shape{8, 256, 16, 16}}) {
    reg("instance_norm", dims, [](const Shape& d) {
      const Tensor x = randn(d), w = randn({d[1]}), b = randn({d[1]});
      return [=] { benchmark::DoNotOptimize(instance_norm(x, w, b)); };
    });
    reg("layer_norm", dims, [](const Shape& d) {
      const Shape ns{d[1], d[2], d[3]};
      const Tensor x = randn(d), w = randn(ns), b = randn(ns);
      return [=] { benchmark::DoNotOptimize(layer_norm(x, ns, w, b)); };
    });
    reg("layer_norm_bwd", dims, [](const Shape& d) {
      const Shape ns{d[1], d[2], d[3]};
      const Tensor x = leaf(d), w = leaf(ns), b = leaf(ns), g = randn(d);
      return [=] {
        const Tensor y = layer_norm(x, ns, w, b);
        benchmark::DoNotOptimize(grad({y}, {x, w, b}, {g}));
      };
    });
    reg("dropout", dims, [](const Shape& d) {
      const Tensor x = randn(d);
      return [=] { benchmark::DoNotOptimize(dropout(x, 0.5)); };
    });
  }
  for (const Shape& dims : {Shape{16, 32, 64, 64}, Shape{32, 68, 32, 32}}) {
    reg("spatial_softmax", dims, [](const Shape& d) {
      const Tensor x = randn(d);
      return [=] { benchmark::DoNotOptimize(spatial_softmax(x)); };
    });
    reg("soft_argmax", dims, [](const Shape& d) {
      const Tensor x = randn(d);
      return [=] { benchmark::DoNotOptimize(soft_argmax(x)); };
    });
    reg("soft_argmax_bwd", dims, [](const Shape& d) {
      const Tensor x = leaf(d), g = randn({d[0], d[1], 2});
      return [=] { benchmark::DoNotOptimize(grad({soft_argmax(x)}, {x}, {g})); };
    });
  }
  return true;
}();

}  // namespace
