// GPU benchmarks of the convolutions (kernels/conv.h), float32, timed with CUDA events and the
// L2 flushed before every iteration (bench/gpu_timer.h), with every CUDA backend side by side on
// the same shapes: the handwritten kernels (v1 direct, v2 implicit GEMM) and cuDNN (in builds
// with it), each selected with a ConvBackendGuard around the public op. Names
// "cuda/<op>/N x Cin x H x W x Cout" (bench/torch_ops/conv.py times the same op in PyTorch):
//   conv2d_<b>_k<k>s<s>[p<p>]       forward with bias, backend b = v1, v2 or cudnn
//   conv2d_<b>_bwd_k<k>s<s>[p<p>]   forward + backward to x, weight and bias (the training step),
//                                   for v2 and cudnn (v1's weight gradient, one thread walking all
//                                   N Ho Wo positions per weight, is the teaching baseline only)
//   conv_transpose2d_<b>_k4s2       kernel 4, stride 2, padding 1 (the backward-data pass)
// Padding is "same" (k / 2) unless the name gives p. Shapes: the SIMPLE landmark net at batch 32
// on 70 x 70 images (3 -> 20 k5, then 35 x 35 maps: 20 -> 48 k5, 48 -> 64 k3, 64 -> 80 k3,
// 80 -> 256 k3, 256 -> 30 k1), the DANN feature extractor at its step's batch (64 source + 64
// target 28 x 28 images: 3 -> 32 k5, then 12 x 12: 32 -> 48 k5, unpadded), a wider layer
// (32 x 128 x 64 x 64 -> 128, k3) and a strided one (k3 s2).
// Minimum bytes: x, weight and the output once (float32); three times that for the training
// step. GFLOP/s: 2 per multiply-add, times 3 for the training step.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench/gpu_timer.h"
#include "core/autograd.h"
#include "kernels/conv.h"

namespace {

using namespace cvg;

struct ConvCase {
  int64_t n, cin, h, w, cout, k, s;
  int64_t p = -1;  // padding; -1: k / 2
  int64_t pad() const { return p < 0 ? k / 2 : p; }
  int64_t ho() const { return (h + 2 * pad() - k) / s + 1; }
  int64_t wo() const { return (w + 2 * pad() - k) / s + 1; }
};

std::string label(const ConvCase& c) {
  return std::to_string(c.n) + "x" + std::to_string(c.cin) + "x" + std::to_string(c.h) + "x" +
         std::to_string(c.w) + "x" + std::to_string(c.cout);
}
// (Built with += : GCC 12 warns falsely (-Wrestrict) about "literal" + std::string at -O3.)
std::string params(const ConvCase& c) {
  std::string s = "_k";
  s += std::to_string(c.k) + "s" + std::to_string(c.s);
  if (c.p >= 0) (s += "p") += std::to_string(c.p);
  return s;
}
// "v1", "v2", "cudnn": the name of a backend in benchmark names.
std::string backend_tag(int backend) {
  if (backend == kConvCudnn) return "cudnn";
  if (backend == kConvCudnnFind) return "cudnnfind";
  std::string s = "v";
  return s += std::to_string(backend);
}

double flops(const ConvCase& c) {
  return 2.0 * c.n * c.cout * c.ho() * c.wo() * c.cin * c.k * c.k;
}
double bytes(const ConvCase& c) {
  return 4.0 * (c.n * c.cin * c.h * c.w + c.cout * c.cin * c.k * c.k + c.n * c.cout * c.ho() * c.wo());
}

void bm_conv2d(benchmark::State& state, ConvCase c, int backend) {
  const ConvBackendGuard guard(backend);
  const Tensor x = bench::randn_cuda({c.n, c.cin, c.h, c.w});
  const Tensor w = bench::randn_cuda({c.cout, c.cin, c.k, c.k});
  const Tensor b = bench::randn_cuda({c.cout});
  const int64_t p = c.pad();
  bench::time_gpu(state, [&] { conv2d(x, w, b, {c.s, c.s}, {p, p}); }, bytes(c), flops(c));
  state.SetLabel(conv_cuda_version_name(backend));
}

void bm_conv2d_bwd(benchmark::State& state, ConvCase c, int backend) {
  const ConvBackendGuard guard(backend);
  Tensor x = bench::randn_cuda({c.n, c.cin, c.h, c.w});
  Tensor w = bench::randn_cuda({c.cout, c.cin, c.k, c.k});
  Tensor b = bench::randn_cuda({c.cout});
  const Tensor gout = bench::randn_cuda({c.n, c.cout, c.ho(), c.wo()});
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  const int64_t p = c.pad();
  bench::time_gpu(
      state, [&] { grad({conv2d(x, w, b, {c.s, c.s}, {p, p})}, {x, w, b}, {gout}); },
      3 * bytes(c), 3 * flops(c));
  state.SetLabel(conv_cuda_version_name(backend));
}

void bm_conv_transpose2d(benchmark::State& state, ConvCase c, int backend) {
  const ConvBackendGuard guard(backend);
  const Tensor x = bench::randn_cuda({c.n, c.cin, c.h, c.w});
  const Tensor w = bench::randn_cuda({c.cin, c.cout, 4, 4});
  const Tensor b = bench::randn_cuda({c.cout});
  bench::time_gpu(state, [&] { conv_transpose2d(x, w, b, {2, 2}, {1, 1}); },
                  4.0 * (c.n * c.cin * c.h * c.w + c.cin * c.cout * 16 + c.n * c.cout * 4 * c.h * c.w),
                  2.0 * c.n * c.cin * c.h * c.w * c.cout * 16);
  state.SetLabel(conv_cuda_version_name(backend));
}

const bool registered = [] {
  std::vector<int> backends;
  for (int v = 1; v <= kConvCudaVersions; ++v) backends.push_back(v);
  if (conv_cudnn_built())
    for (int b : {kConvCudnn, kConvCudnnFind}) backends.push_back(b);
  const ConvCase cases[] = {{32, 3, 70, 70, 20, 5, 1},    {32, 20, 35, 35, 48, 5, 1},
                            {32, 48, 35, 35, 64, 3, 1},   {32, 64, 35, 35, 80, 3, 1},
                            {32, 80, 35, 35, 256, 3, 1},  {32, 256, 35, 35, 30, 1, 1},
                            {128, 3, 28, 28, 32, 5, 1, 0}, {128, 32, 12, 12, 48, 5, 1, 0},
                            {32, 128, 64, 64, 128, 3, 1}, {32, 128, 64, 64, 128, 3, 2}};
  for (const ConvCase& c : cases)
    for (int v : backends) {
      const std::string tag = backend_tag(v);
      bench::reg_gpu("cuda/conv2d_" + tag + params(c) + "/" + label(c),
                     [c, v](benchmark::State& s) { bm_conv2d(s, c, v); });
      if (v != 1)
        bench::reg_gpu("cuda/conv2d_" + tag + "_bwd" + params(c) + "/" + label(c),
                       [c, v](benchmark::State& s) { bm_conv2d_bwd(s, c, v); });
    }
  const ConvCase up{32, 64, 64, 64, 32, 4, 2};
  for (int v : backends)
    bench::reg_gpu("cuda/conv_transpose2d_" + backend_tag(v) + "_k4s2/" + label(up),
                   [up, v](benchmark::State& s) { bm_conv_transpose2d(s, up, v); });
  return true;
}();

}  // namespace
