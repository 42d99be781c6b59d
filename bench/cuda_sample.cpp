// GPU benchmarks of the sampling family (kernels/sample.h), float32, timed with CUDA events and
// the L2 flushed before every iteration (bench/gpu_timer.h). Same ops and names as
// bench/cpu_sample.cpp ("cuda/<op>/N x C x H x W"), at GPU sizes: the landmarks app's warps at
// its GPU batch (32 RGB images of 100 x 100) and a feature map (16 x 64 x 128 x 128).
// Minimum bytes: every input read once and every output written once (float32).
#include <benchmark/benchmark.h>

#include <array>
#include <string>

#include "bench/bench_common.h"
#include "bench/gpu_timer.h"
#include "core/autograd.h"
#include "kernels/sample.h"
#include "kernels/unary.h"

namespace {

using namespace cvg;

using Dims = bench::Dims4;

double image_bytes(const Dims& d) { return 4.0 * d[0] * d[1] * d[2] * d[3]; }
double grid_bytes(const Dims& d) { return 8.0 * d[0] * d[2] * d[3]; }

void bm_grid_sample(benchmark::State& state, Dims d, GridSampleMode mode) {
  const Tensor x = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  const Tensor grid = mul(bench::randn_cuda({d[0], d[2], d[3], 2}), 0.5);
  bench::time_gpu(state, [&] { grid_sample(x, grid, mode); },
                  2 * image_bytes(d) + grid_bytes(d), 0);
}

void bm_grid_sample_bwd(benchmark::State& state, Dims d) {
  Tensor x = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  Tensor grid = mul(bench::randn_cuda({d[0], d[2], d[3], 2}), 0.5);
  const Tensor gout = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  x.set_requires_grad(true);
  grid.set_requires_grad(true);
  // Forward: x, grid in, out; backward: gout, x, grid in, d x, d grid out.
  bench::time_gpu(state, [&] { grad({grid_sample(x, grid)}, {x, grid}, {gout}); },
                  5 * image_bytes(d) + 3 * grid_bytes(d), 0);
}

void bm_flow_warp(benchmark::State& state, Dims d) {
  const Tensor x = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  const Tensor flow = mul(bench::randn_cuda({d[0], 2, d[2], d[3]}), 3.0);
  bench::time_gpu(state, [&] { flow_warp(x, flow); }, 2 * image_bytes(d) + grid_bytes(d), 0);
}

void bm_interpolate(benchmark::State& state, Dims d, InterpMode mode) {
  const Tensor x = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  bench::time_gpu(state, [&] { interpolate(x, {2 * d[2], 2 * d[3]}, mode); },
                  5 * image_bytes(d), 0);
}

const bool registered = [] {
  for (const Dims& d : {Dims{32, 3, 100, 100}, Dims{16, 64, 128, 128}}) {
    std::string s = "/";  // appended: GCC 12 warns falsely (-Wrestrict) on "/" + string
    s += bench::dims_label(d);
    bench::reg_gpu("cuda/grid_sample" + s,
                   [d](benchmark::State& st) { bm_grid_sample(st, d, GridSampleMode::Bilinear); });
    bench::reg_gpu("cuda/grid_sample_bwd" + s,
                   [d](benchmark::State& st) { bm_grid_sample_bwd(st, d); });
    bench::reg_gpu("cuda/grid_sample_nearest" + s,
                   [d](benchmark::State& st) { bm_grid_sample(st, d, GridSampleMode::Nearest); });
    bench::reg_gpu("cuda/flow_warp" + s, [d](benchmark::State& st) { bm_flow_warp(st, d); });
    bench::reg_gpu("cuda/interpolate_bilinear2x" + s,
                   [d](benchmark::State& st) { bm_interpolate(st, d, InterpMode::Bilinear); });
    bench::reg_gpu("cuda/interpolate_nearest2x" + s,
                   [d](benchmark::State& st) { bm_interpolate(st, d, InterpMode::Nearest); });
  }
  return true;
}();

}  // namespace
