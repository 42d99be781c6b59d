// GPU benchmarks of the convolutions (kernels/conv.h), float32, timed with CUDA events and the
// L2 flushed before every iteration (bench/gpu_timer.h). Same ops and names as
// bench/cpu_conv.cpp ("cuda/<op>/N x Cin x H x W x Cout", padding k / 2, bias), plus the forward
// of each CUDA version run directly (conv2d_v<n>_k<k>s<s>: 1 direct, 2 implicit GEMM) to show
// what each version adds. Shapes: the SIMPLE net at a GPU batch (64), and a wider layer
// (32 x 128 x 64 x 64 -> 128, k3) and a strided one (k3 s2).
// Minimum bytes: x, weight and the output once (float32); three times that for the training
// step. GFLOP/s: 2 per multiply-add, times 3 for the training step.
#include <benchmark/benchmark.h>

#include <string>

#include "bench/gpu_timer.h"
#include "core/autograd.h"
#include "kernels/conv.h"

namespace {

using namespace cvg;

struct ConvCase {
  int64_t n, cin, h, w, cout, k, s;
  int64_t ho() const { return (h + 2 * (k / 2) - k) / s + 1; }
  int64_t wo() const { return (w + 2 * (k / 2) - k) / s + 1; }
};

std::string label(const ConvCase& c) {
  return std::to_string(c.n) + "x" + std::to_string(c.cin) + "x" + std::to_string(c.h) + "x" +
         std::to_string(c.w) + "x" + std::to_string(c.cout);
}
std::string params(const ConvCase& c) {
  return "_k" + std::to_string(c.k) + "s" + std::to_string(c.s);
}

double flops(const ConvCase& c) {
  return 2.0 * c.n * c.cout * c.ho() * c.wo() * c.cin * c.k * c.k;
}
double bytes(const ConvCase& c) {
  return 4.0 * (c.n * c.cin * c.h * c.w + c.cout * c.cin * c.k * c.k + c.n * c.cout * c.ho() * c.wo());
}

void bm_conv2d(benchmark::State& state, ConvCase c) {
  const Tensor x = bench::randn_cuda({c.n, c.cin, c.h, c.w});
  const Tensor w = bench::randn_cuda({c.cout, c.cin, c.k, c.k});
  const Tensor b = bench::randn_cuda({c.cout});
  const int64_t p = c.k / 2;
  bench::time_gpu(state, [&] { conv2d(x, w, b, {c.s, c.s}, {p, p}); }, bytes(c), flops(c));
}

// One CUDA version's forward kernel, called directly (no autograd, no checks).
void bm_conv2d_version(benchmark::State& state, ConvCase c, int version) {
  const Tensor x = bench::randn_cuda({c.n, c.cin, c.h, c.w});
  const Tensor w = bench::randn_cuda({c.cout, c.cin, c.k, c.k});
  const Tensor b = bench::randn_cuda({c.cout});
  const Tensor out = Tensor::empty({c.n, c.cout, c.ho(), c.wo()}, x.options());
  ConvGeometry g;
  g.n = c.n;
  g.cin = c.cin;
  g.h = c.h;
  g.w = c.w;
  g.cout = c.cout;
  g.ho = c.ho();
  g.wo = c.wo();
  g.kh = g.kw = c.k;
  g.sh = g.sw = c.s;
  g.ph = g.pw = c.k / 2;
  bench::time_gpu(state, [&] { conv2d_cuda(version, ConvPass::forward, x, w, b, g, out); },
                  bytes(c), flops(c));
  state.SetLabel(conv_cuda_version_name(version));
}

void bm_conv2d_bwd(benchmark::State& state, ConvCase c) {
  Tensor x = bench::randn_cuda({c.n, c.cin, c.h, c.w});
  Tensor w = bench::randn_cuda({c.cout, c.cin, c.k, c.k});
  Tensor b = bench::randn_cuda({c.cout});
  const Tensor gout = bench::randn_cuda({c.n, c.cout, c.ho(), c.wo()});
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const int64_t p = c.k / 2;
  bench::time_gpu(
      state, [&] { grad({conv2d(x, w, b, {c.s, c.s}, {p, p})}, {x, w, b}, {gout}); },
      3 * bytes(c), 3 * flops(c));
}

void bm_conv_transpose2d(benchmark::State& state, ConvCase c) {
  const Tensor x = bench::randn_cuda({c.n, c.cin, c.h, c.w});
  const Tensor w = bench::randn_cuda({c.cin, c.cout, 4, 4});
  const Tensor b = bench::randn_cuda({c.cout});
  bench::time_gpu(state, [&] { conv_transpose2d(x, w, b, {2, 2}, {1, 1}); },
                  4.0 * (c.n * c.cin * c.h * c.w + c.cin * c.cout * 16 + c.n * c.cout * 4 * c.h * c.w),
                  2.0 * c.n * c.cin * c.h * c.w * c.cout * 16);
}

const bool registered = [] {
  const ConvCase cases[] = {{64, 3, 70, 70, 20, 5, 1},    {64, 20, 35, 35, 48, 5, 1},
                            {64, 48, 35, 35, 64, 3, 1},   {64, 64, 35, 35, 80, 3, 1},
                            {64, 80, 35, 35, 256, 3, 1},  {64, 256, 35, 35, 30, 1, 1},
                            {32, 128, 64, 64, 128, 3, 1}, {32, 128, 64, 64, 128, 3, 2}};
  for (const ConvCase& c : cases) {
    bench::reg_gpu("cuda/conv2d" + params(c) + "/" + label(c),
                   [c](benchmark::State& s) { bm_conv2d(s, c); });
    for (int v = 1; v <= kConvCudaVersions; ++v)
      bench::reg_gpu("cuda/conv2d_v" + std::to_string(v) + params(c) + "/" + label(c),
                     [c, v](benchmark::State& s) { bm_conv2d_version(s, c, v); });
    bench::reg_gpu("cuda/conv2d_bwd" + params(c) + "/" + label(c),
                   [c](benchmark::State& s) { bm_conv2d_bwd(s, c); });
  }
  const ConvCase up{32, 64, 64, 64, 32, 4, 2};
  bench::reg_gpu("cuda/conv_transpose2d_k4s2/" + label(up),
                 [up](benchmark::State& s) { bm_conv_transpose2d(s, up); });
  return true;
}();

}  // namespace
