// The [cuda] parity of the convolutions for every CUDA backend (kernels/conv.h): the handwritten
// v1 (direct) and v2 (implicit GEMM) kernels and, in builds with cuDNN, cuDNN. Each backend is
// selected in process with a ConvBackendGuard, then conv2d and conv_transpose2d run forward and
// backward (which runs the conv2d_backward_input and conv2d_backward_weight ops) on the GPU, in
// float32 and float64, against the same ops on the CPU in float64. One test case per backend
// ("conv backend parity: v1 | v2 | v3 | cudnn"; the cudnn one also tagged [cudnn]).
//
// Shapes are odd on purpose: groups (including depthwise), dilation, stride 2, asymmetric
// padding and kernels, channel counts that are not multiples of the 64-wide tiles, a shape
// spanning many blocks, a pointwise one, a 1 x 1 output, and a conv_transpose2d whose
// output_padding (at least the stride, below the dilation) gives an output that is not the
// full input of its conv2d (the case conv_cudnn.cpp pads and crops for).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "kernels/conv.h"
#include "tests/support/op_registry.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

struct Case {
  const char* label;
  bool transposed;
  int64_t n, cin, cout, h, w, kh, kw;
  ConvSize2 stride, padding, dilation, output_padding;
  int64_t groups;
};

const Case kCases[] = {
    {"3x3 same", false, 2, 3, 5, 9, 7, 3, 3, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 1},
    {"groups 3, stride 2, dilation (1, 2), asymmetric", false, 3, 6, 9, 11, 13, 3, 2, {2, 2},
     {1, 0}, {1, 2}, {0, 0}, 3},
    {"depthwise, dilation 2, padding 2", false, 2, 8, 8, 10, 9, 3, 3, {1, 1}, {2, 2}, {2, 2},
     {0, 0}, 8},
    {"67 output channels (> one tile), k5 stride 2", false, 2, 20, 67, 17, 15, 5, 5, {2, 2},
     {2, 2}, {1, 1}, {0, 0}, 1},
    {"many blocks, groups 2", false, 4, 48, 70, 35, 33, 3, 3, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 2},
    {"pointwise", false, 1, 5, 7, 6, 8, 1, 1, {1, 1}, {0, 0}, {1, 1}, {0, 0}, 1},
    {"1 x 1 output", false, 2, 4, 3, 5, 5, 5, 5, {1, 1}, {0, 0}, {1, 1}, {0, 0}, 1},
    {"transposed k4 s2, groups 2, output_padding (1, 0)", true, 2, 6, 8, 7, 5, 4, 4, {2, 2},
     {1, 1}, {1, 1}, {1, 0}, 2},
    {"transposed, output_padding 1 >= stride 1 (cropped output)", true, 1, 3, 5, 6, 6, 3, 3,
     {1, 1}, {1, 1}, {2, 2}, {1, 1}, 1},
};

// x, weight, bias of a case as float64 CPU leaves (cout: the result's channels).
TensorList inputs_of(const Case& c, uint64_t seed) {
  const Shape ws = c.transposed ? Shape{c.cin, c.cout / c.groups, c.kh, c.kw}
                                : Shape{c.cout, c.cin / c.groups, c.kh, c.kw};
  return {uniform64({c.n, c.cin, c.h, c.w}, -1, 1, seed), uniform64(ws, -1, 1, seed + 1),
          uniform64({c.cout}, -1, 1, seed + 2)};
}

Tensor convolve(const Case& c, const TensorList& xs) {
  if (c.transposed)
    return conv_transpose2d(xs[0], xs[1], xs[2], c.stride, c.padding, c.output_padding,
                            c.groups, c.dilation);
  return conv2d(xs[0], xs[1], xs[2], c.stride, c.padding, c.dilation, c.groups);
}

// The result and the gradients of x, weight and bias for grad_out `gout`, on `dev` in `dt`.
TensorList run(const Case& c, const TensorList& leaves, const Tensor& gout, Device dev,
               DType dt) {
  TensorList xs;
  for (const Tensor& t : leaves) {
    Tensor y = t.detach().to(dev).to(dt).detach();
    y.set_requires_grad(true);
    xs.push_back(y);
  }
  const Tensor out = convolve(c, xs);
  TensorList r = grad({out}, xs, {gout.to(dev).to(dt)});
  r.insert(r.begin(), out);
  return r;
}

// |got - ref| <= tol (max |ref| + 1) + tol |ref| elementwise: rounding errors of a sum grow with
// the size of its terms, so the absolute part scales with the result's largest magnitude.
bool close(const Tensor& got, const Tensor& ref, double tol) {
  const std::vector<double> r = ref.to_vector<double>();
  double scale = 1;
  for (double v : r) scale = std::max(scale, std::abs(v) + 1);
  return allclose(got.to(kCPU).to(DType::float64), ref, tol, tol * scale);
}

// Every case, in float32 and float64, with `backend` selected.
void check_backend(int backend) {
  const ConvBackendGuard guard(backend);
  REQUIRE(conv_cuda_version() == backend);
  uint64_t seed = 4000;
  for (const Case& c : kCases) {
    const TensorList leaves = inputs_of(c, seed += 10);
    Tensor probe;
    {
      NoGradGuard no_grad;
      probe = convolve(c, leaves);
    }
    const Tensor gout = uniform64(probe.shape(), -1, 1, seed + 5, false);
    const TensorList ref = run(c, leaves, gout, kCPU, DType::float64);
    for (DType dt : {DType::float32, DType::float64}) {
      // float64 sums differ from the CPU's only in their order. float32: 2e-4 of the scale for
      // the handwritten kernels, which sum products in order; cuDNN may pick Winograd or FFT
      // algorithms, whose transforms add rounding of their own, hence 1e-3.
      const double tol = dt == DType::float64 ? 1e-9 : is_cudnn_backend(backend) ? 1e-3 : 2e-4;
      const TensorList got = run(c, leaves, gout, kCUDA, dt);
      const char* names[] = {"result", "d x", "d weight", "d bias"};
      for (size_t k = 0; k < ref.size(); ++k) {
        INFO(c.label << ", " << conv_cuda_version_name(backend) << ", " << dtype_name(dt) << ": "
                     << names[k]);
        REQUIRE(got[k].device() == kCUDA);
        REQUIRE(got[k].shape() == ref[k].shape());
        CHECK(close(got[k], ref[k], tol));
      }
    }
  }
}

}  // namespace

// One test case per backend, so that a failure names the backend and scripts/gpu-check can
// report each one (it runs them by name: "conv backend parity: <v1|v2|v3|cudnn|cudnn-find>").
TEST_CASE("conv backend parity: v1", "[cuda][conv][conv_backends]") { check_backend(1); }
TEST_CASE("conv backend parity: v2", "[cuda][conv][conv_backends]") { check_backend(2); }
TEST_CASE("conv backend parity: v3", "[cuda][conv][conv_backends]") { check_backend(3); }
static_assert(kConvCudaVersions == 3, "add a test case for the new CUDA convolution version");

namespace {
// A cuDNN backend's parity, or a warning in builds without cuDNN.
void check_cudnn_backend(int backend) {
  if (!conv_cudnn_built()) {
    WARN("cvgrad was built without cuDNN: the cuDNN backend is not tested");
    return;
  }
  check_backend(backend);
}
}  // namespace

TEST_CASE("conv backend parity: cudnn", "[cuda][conv][conv_backends][cudnn]") {
  check_cudnn_backend(kConvCudnn);
}

// The timed search picks among the same algorithms by speed, so any of them may run.
TEST_CASE("conv backend parity: cudnn-find", "[cuda][conv][conv_backends][cudnn]") {
  check_cudnn_backend(kConvCudnnFind);
}
