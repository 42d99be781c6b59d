// CPU benchmarks of the fused landmark losses (kernels/landmark_loss.h) against the unfused
// composition they replace (spatial_softmax + models/landmarks/losses.h), float32. The same
// computations in PyTorch: bench/torch_ops/landmark_loss.py. Names "cpu/<op>/N x K x h x w",
// where N x K x h x w is the detector output of a pair batch (N = 32 maps = 16 image pairs):
//   landmark_equivariance[_unfused]      the equivariance loss of the 16 pairs (first half of
//                                        the maps vs second half, a smooth random grid)
//   landmark_diversity_m<m>[_unfused]    the diversity loss of all N maps, cells m x m
//   ..._bwd                              forward + backward to the logits (the training case)
// Shapes: K = 10 and 30 landmarks at the app's map sizes 24 x 24 (48 px crops, m = 2) and
// 35 x 35 (70 px crops, m = 5 since m must divide 35).
#include <benchmark/benchmark.h>

#include <array>
#include <functional>
#include <string>

#include "bench/bench_common.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/landmark_loss.h"
#include "kernels/shape.h"
#include "kernels/spatial.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "models/landmarks/losses.h"

namespace {

using namespace cvg;

using Dims = bench::Dims4;  // N, K, h, w

// The pixel grid (x, y) = (j, i) of half the batch, moved by up to about a pixel: N/2 x h x w x 2.
Tensor bench_grid(const Dims& d) {
  const int64_t n = d[0] / 2, h = d[2], w = d[3];
  const Tensor xs = expand(reshape(arange(0, static_cast<double>(w)), {1, 1, w, 1}), {n, h, w, 1});
  const Tensor ys = expand(reshape(arange(0, static_cast<double>(h)), {1, h, 1, 1}), {n, h, w, 1});
  return (cat({xs, ys}, 3) + randn({n, h, w, 2}) * 0.5).contiguous();
}

// Logits N x K x h x w (standard normal times 2: moderately peaked maps), requiring grad when
// the benchmark runs the backward.
Tensor bench_logits(const Dims& d, bool grad) {
  Tensor x = (randn({d[0], d[1], d[2], d[3]}) * 2.0).detach();
  if (grad) x.set_requires_grad(true);
  return x;
}

Tensor equivariance(const Tensor& x, const Tensor& grid, bool fused) {
  const int64_t n = x.size(0) / 2;
  const Tensor a = narrow(x, 0, 0, n), b = narrow(x, 0, n, n);
  if (fused) return landmark_equivariance_loss(a, b, grid);
  return landmarks::equivariance_loss(spatial_softmax(a), spatial_softmax(b), grid);
}

Tensor diversity(const Tensor& x, int64_t m, bool fused) {
  return fused ? landmark_diversity_loss(x, m) : landmarks::diversity_loss(spatial_softmax(x), m);
}

// Runs loss (forward only, or forward and backward to x).
void run(benchmark::State& state, const Tensor& x, bool backward,
         const std::function<Tensor()>& loss) {
  for (auto _ : state) {
    if (backward) {
      const Tensor g = grad({loss()}, {x})[0];
      benchmark::DoNotOptimize(g.raw_data());
    } else {
      NoGradGuard no_grad;
      benchmark::DoNotOptimize(loss().raw_data());
    }
  }
}

void reg(const std::string& op, const Dims& d, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(("cpu/" + op + "/" + bench::dims_label(d)).c_str(), std::move(fn))
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  for (const Dims& d : {Dims{32, 10, 24, 24}, Dims{32, 30, 24, 24}, Dims{32, 10, 35, 35},
                        Dims{32, 30, 35, 35}}) {
    const int64_t m = d[2] % 2 == 0 ? 2 : 5;
    for (const bool fused : {true, false}) {
      const std::string tail = fused ? "" : "_unfused";
      for (const bool bwd : {false, true}) {
        const std::string suffix = tail + (bwd ? "_bwd" : "");
        reg("landmark_equivariance" + suffix, d, [d, fused, bwd](benchmark::State& s) {
          manual_seed(0);
          const Tensor x = bench_logits(d, bwd), grid = bench_grid(d);
          run(s, x, bwd, [&] { return equivariance(x, grid, fused); });
        });
        reg("landmark_diversity_m" + std::to_string(m) + suffix, d,
            [d, m, fused, bwd](benchmark::State& s) {
              manual_seed(0);
              const Tensor x = bench_logits(d, bwd);
              run(s, x, bwd, [&] { return diversity(x, m, fused); });
            });
      }
    }
  }
  return true;
}();

}  // namespace
