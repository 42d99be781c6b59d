// GPU benchmarks of the pooling family (kernels/pool.h), float32, timed with CUDA events and the
// L2 flushed before every iteration (bench/gpu_timer.h). Same ops and names as
// bench/cpu_pool.cpp ("cuda/<op>/N x C x H x W", the input's size), at sizes that fill an H100
// (the ">= 70% of the copy bandwidth" is read off the %D2D counter).
// Minimum bytes (float32 values, int32 switches), with P = N C H W / 4 pooled outputs:
//   max_pool2d          read the input, write values and switches       4 NCHW + 8 P
//   max_pool2d_bwd      forward, then read grad_out and switches, write d input: 8 NCHW + 16 P
//   max_unpool2d        read values and switches, write the H x W output:      4 NCHW + 8 P
//   max_unpool2d_bwd    read switches (and the P gathered grads), write P:             16 P
//   avg_pool2d          read the input, write P values:                         4 NCHW + 4 P
// max_unpool2d_bwd counts only the P gathered values of grad_out; the memory system moves
// whole 32-byte sectors around them, so its %D2D understates how close it is to the roofline:
// read it against PyTorch's time on the same shape.
#include <benchmark/benchmark.h>

#include <array>
#include <string>

#include "bench/bench_common.h"
#include "bench/gpu_timer.h"
#include "core/autograd.h"
#include "kernels/pool.h"

namespace {

using namespace cvg;

using Dims = bench::Dims4;

double in_bytes(const Dims& d) { return 4.0 * d[0] * d[1] * d[2] * d[3]; }
double pooled(const Dims& d) { return 1.0 * d[0] * d[1] * (d[2] / 2) * (d[3] / 2); }

void bm_max_pool(benchmark::State& state, Dims d, int64_t k, int64_t s, int64_t p) {
  const Tensor x = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  bench::time_gpu(state, [&] { max_pool2d_with_indices(x, {k, k}, PoolSize2{s, s}, {p, p}); },
                  in_bytes(d) + 8 * pooled(d), 0);
}

void bm_max_pool_bwd(benchmark::State& state, Dims d) {
  Tensor x = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  x.set_requires_grad(true);
  const Tensor gout = bench::randn_cuda({d[0], d[1], d[2] / 2, d[3] / 2});
  bench::time_gpu(state, [&] { grad({max_pool2d(x, {2, 2})}, {x}, {gout}); },
                  2 * in_bytes(d) + 16 * pooled(d), 0);
}

void bm_max_unpool(benchmark::State& state, Dims d) {
  const PooledWithSwitches p = max_pool2d_with_indices(bench::randn_cuda({d[0], d[1], d[2], d[3]}), {2, 2});
  bench::time_gpu(state, [&] { max_unpool2d(p.values, p.switches, {d[2], d[3]}); },
                  in_bytes(d) + 8 * pooled(d), 0);
}

void bm_max_unpool_bwd(benchmark::State& state, Dims d) {
  const PooledWithSwitches p = max_pool2d_with_indices(bench::randn_cuda({d[0], d[1], d[2], d[3]}), {2, 2});
  const Tensor gout = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  bench::time_gpu(state, [&] { max_unpool2d_backward(gout, p.switches); }, 16 * pooled(d), 0);
}

void bm_avg_pool(benchmark::State& state, Dims d) {
  const Tensor x = bench::randn_cuda({d[0], d[1], d[2], d[3]});
  bench::time_gpu(state, [&] { avg_pool2d(x, {2, 2}); }, in_bytes(d) + 4 * pooled(d), 0);
}

const bool registered = [] {
  for (const Dims& d : {Dims{256, 32, 24, 24}, Dims{32, 64, 112, 112}, Dims{64, 128, 56, 56}}) {
    std::string s = "/";  // appended: GCC 12 warns falsely (-Wrestrict) on "/" + string
    s += bench::dims_label(d);
    bench::reg_gpu("cuda/max_pool2d_k2s2" + s, [d](benchmark::State& st) { bm_max_pool(st, d, 2, 2, 0); });
    bench::reg_gpu("cuda/max_pool2d_k3s2" + s, [d](benchmark::State& st) { bm_max_pool(st, d, 3, 2, 1); });
    bench::reg_gpu("cuda/max_pool2d_k2s2_bwd" + s, [d](benchmark::State& st) { bm_max_pool_bwd(st, d); });
    bench::reg_gpu("cuda/max_unpool2d_k2s2" + s, [d](benchmark::State& st) { bm_max_unpool(st, d); });
    bench::reg_gpu("cuda/max_unpool2d_k2s2_bwd" + s, [d](benchmark::State& st) { bm_max_unpool_bwd(st, d); });
    bench::reg_gpu("cuda/avg_pool2d_k2s2" + s, [d](benchmark::State& st) { bm_avg_pool(st, d); });
  }
  return true;
}();

}  // namespace
