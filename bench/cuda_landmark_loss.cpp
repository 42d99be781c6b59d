// GPU benchmarks of the fused landmark losses (kernels/landmark_loss.h) against the unfused
// composition (spatial_softmax + models/landmarks/losses.h), float32, timed with CUDA events
// and the L2 flushed before every iteration (bench/gpu_timer.h). Same ops and names as
// bench/cpu_landmark_loss.cpp ("cuda/<op>/N x K x h x w", N maps = N/2 image pairs for the
// equivariance loss), at the CPU sizes and at a larger GPU batch (N = 128).
// Minimum bytes (float32): the forward reads the logits (and the grid of the N/2 pairs); the
// forward + backward reads them twice (the backward recomputes the softmax from the logits)
// and writes the gradient once.
#include <benchmark/benchmark.h>

#include <array>
#include <functional>
#include <string>

#include "bench/bench_common.h"
#include "bench/gpu_timer.h"
#include "core/autograd.h"
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

double logit_bytes(const Dims& d) { return 4.0 * d[0] * d[1] * d[2] * d[3]; }
double grid_bytes(const Dims& d) { return 8.0 * (d[0] / 2) * d[2] * d[3]; }

// The pixel grid (x, y) = (j, i) of the N/2 pairs, moved by about half a pixel, on the GPU.
Tensor bench_grid(const Dims& d) {
  const int64_t n = d[0] / 2, h = d[2], w = d[3];
  const TensorOptions o = TensorOptions{}.with_device(kCUDA);
  const Tensor xs = expand(reshape(arange(0, static_cast<double>(w), 1.0, o), {1, 1, w, 1}), {n, h, w, 1});
  const Tensor ys = expand(reshape(arange(0, static_cast<double>(h), 1.0, o), {1, h, 1, 1}), {n, h, w, 1});
  return (cat({xs, ys}, 3) + bench::randn_cuda({n, h, w, 2}) * 0.5).contiguous();
}

Tensor bench_logits(const Dims& d, bool grad) {
  Tensor x = (bench::randn_cuda({d[0], d[1], d[2], d[3]}) * 2.0).detach();
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

void run(benchmark::State& state, const Tensor& x, bool backward, double bytes,
         const std::function<Tensor()>& loss) {
  bench::time_gpu(
      state,
      [&] {
        if (backward) {
          grad({loss()}, {x});
        } else {
          NoGradGuard no_grad;
          loss();
        }
      },
      bytes, 0);
}

const bool registered = [] {
  for (const Dims& d : {Dims{32, 10, 24, 24}, Dims{32, 30, 24, 24}, Dims{32, 10, 35, 35},
                        Dims{32, 30, 35, 35}, Dims{128, 30, 35, 35}}) {
    const int64_t m = d[2] % 2 == 0 ? 2 : 5;
    for (const bool fused : {true, false}) {
      const std::string tail = fused ? "" : "_unfused";
      for (const bool bwd : {false, true}) {
        const std::string name_tail = tail + (bwd ? "_bwd" : "") + "/" + bench::dims_label(d);
        const double eq_bytes = (bwd ? 3 : 1) * logit_bytes(d) + (bwd ? 2 : 1) * grid_bytes(d);
        const double div_bytes = (bwd ? 3 : 1) * logit_bytes(d);
        bench::reg_gpu("cuda/landmark_equivariance" + name_tail,
                       [d, fused, bwd, eq_bytes](benchmark::State& s) {
                         const Tensor x = bench_logits(d, bwd), grid = bench_grid(d);
                         run(s, x, bwd, eq_bytes, [&] { return equivariance(x, grid, fused); });
                       });
        bench::reg_gpu("cuda/landmark_diversity_m" + std::to_string(m) + name_tail,
                       [d, m, fused, bwd, div_bytes](benchmark::State& s) {
                         const Tensor x = bench_logits(d, bwd);
                         run(s, x, bwd, div_bytes, [&] { return diversity(x, m, fused); });
                       });
      }
    }
  }
  return true;
}();

}  // namespace
