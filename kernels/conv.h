#pragma once
// 2-D convolution and transposed convolution, with PyTorch's names, arguments, layouts and
// output sizes (torch.nn.functional.conv2d / conv_transpose2d).
//
// Layouts: x is N x Cin x H x W (or an unbatched Cin x H x W, which gives an unbatched result);
// conv2d's weight is Cout x Cin/groups x kH x kW; conv_transpose2d's weight is
// Cin x Cout/groups x kH x kW (PyTorch's layout: the weight of the conv2d it is the adjoint of);
// bias is [Cout] or an undefined Tensor. Inputs may be any strided views; results are
// contiguous. float32 and float64; every tensor of a call must share the dtype and the device.
// Pairs of sizes are {height, width}. Groups split the channels into `groups` consecutive
// blocks: output channel block g sees only input channel block g.
//
// Output size per axis (conv2d):        out = floor((in + 2p - d (k - 1) - 1) / s) + 1
//                (conv_transpose2d):    out = (in - 1) s - 2p + d (k - 1) + output_padding + 1
// Padding is zeros. output_padding must be smaller than the stride or the dilation (as in
// PyTorch); it only picks among the input sizes that convolve to the same output size.
// Bad arguments (wrong ranks, Cin != weight.size(1) * groups, groups not dividing the channels,
// non-positive stride/dilation, negative padding, an output smaller than 1 x 1, mixed dtypes or
// devices) are cvg::Errors naming the op and the values.
//
// Autograd. conv2d is linear in x and in weight, so its gradients are the two adjoint ops:
//   d x      = conv2d_backward_input(grad_out, weight, x.shape, ...)
//   d weight = conv2d_backward_weight(grad_out, x, weight.shape, ...)
//   d bias   = sum of grad_out over N, H, W
// Each backward op is itself an op with a node whose backward is made of these three ops again
// (the adjoint of conv2d_backward_input in grad_out is conv2d, and so on), so gradients of
// gradients work (gradient penalties). conv_transpose2d is conv2d_backward_input with the roles
// of the shapes exchanged, plus the bias.
// input_shape / weight_shape of the backward ops name the shape of the forward x / weight; with
// stride > 1 several input sizes give the same output size, so the shape is needed.
//
// Kernels (all deterministic: every output element is summed in a fixed order by one thread):
//   CPU   im2col + GEMM (kernels/matmul.h: OpenBLAS, or the blocked loop), one image at a time:
//         the image is unfolded into a column matrix [Cin kH kW, Ho Wo] and the forward pass is
//         weight [Cout, Cin kH kW] @ columns; the input gradient is weight^T @ grad_out folded
//         back by col2im; the weight gradient sums grad_out @ columns^T over the images. A 1x1
//         stride-1 unpadded convolution uses the image itself as its column matrix.
//   CUDA  v1 direct: one thread per result element, loops over its sum (conv_math.h, *_at);
//         v2 implicit GEMM: the GEMM above without a column buffer, tiles of both operands
//         gathered into shared memory, register tiling, and for the weight gradient a split of
//         the N Ho Wo reduction across blocks whose partial sums a second kernel adds in a fixed
//         order (deterministic, no atomics). The default is v2.
//         v3 (float32): v2 with tiles of up to 128 x 128 where the pass is large enough.
//         Correct (parity tests) but slower than v2 on an H100 (1.0-1.6x its time): see
//         kernels/conv_cuda.cu. The default is v2.
//   cuDNN (kernels/conv_cudnn.cpp), in builds that found it (CMake: CVG_CUDNN): forward,
//         backward-data and backward-filter with the algorithm cuDNN's heuristics rank first for
//         the shape (FP32 FMA math, no TF32; deterministic algorithms only in deterministic
//         mode). The baseline the handwritten kernels are measured against (CVG_CONV=cudnn).
//   cuDNN with a timed search (CVG_CONV=cudnn-find, as PyTorch's cudnn.benchmark; the default
//         CUDA backend where cuDNN is built): on a shape's first call, cuDNN runs every
//         candidate algorithm and the fastest is kept. Costs a search per new shape and may
//         pick differently run to run (timings vary), so deterministic mode falls back to the
//         heuristics' choice. On an H100 the landmarks step took 7.4-7.7 ms with it, 9.2-10.6
//         with the heuristics and 24.4 with the handwritten v2 (bench/results), so users get
//         the fastest unasked.
// The CUDA backend is chosen at run time, from the environment (read once, at the first CUDA
// convolution): CVG_CONV=cudnn-find (the default with cuDNN), cudnn, or cvgrad (the handwritten
// kernels: the default without cuDNN), and CVG_CONV_VERSION=1|2|3 for the handwritten version
// (setting it alone means cvgrad); code (tests, benchmarks) overrides it with a ConvBackendGuard.
#include <array>

#include "core/tensor.h"
#include "kernels/conv_math.h"

namespace cvg {

using ConvSize2 = std::array<int64_t, 2>;  // {height, width}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              ConvSize2 stride = {1, 1}, ConvSize2 padding = {0, 0}, ConvSize2 dilation = {1, 1},
              int64_t groups = 1);

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        ConvSize2 stride = {1, 1}, ConvSize2 padding = {0, 0},
                        ConvSize2 output_padding = {0, 0}, int64_t groups = 1,
                        ConvSize2 dilation = {1, 1});

// grad_out: N x Cout x Ho x Wo (batched only); returns N x Cin x H x W = input_shape.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             ConvSize2 stride, ConvSize2 padding, ConvSize2 dilation,
                             int64_t groups);
// grad_out: N x Cout x Ho x Wo, x: N x Cin x H x W; returns weight_shape.
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              ConvSize2 stride, ConvSize2 padding, ConvSize2 dilation,
                              int64_t groups);

// ---- raw kernels (no autograd, no checks) ----------------------------------------------------
// Operands a, b are in the order of the public op's arguments: forward (x, weight), backward
// input (grad_out, weight), backward weight (grad_out, x); all contiguous, of one floating
// dtype, on one device. `out` is a contiguous tensor of the result shape, fully overwritten.
// bias (forward only) may be undefined. The geometry's ho, wo are grad_out's / out's sizes
// (conv_transpose2d's output_padding can make them smaller than conv_out_size).

// The production CPU path: im2col + GEMM.
void conv2d_cpu(ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                const ConvGeometry& g, const Tensor& out);
// The per-element loops of conv_math.h that the CUDA v1 kernels run, on the CPU.
void conv2d_direct_cpu(ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                       const ConvGeometry& g, const Tensor& out);
// The operand loads of the CUDA v2 implicit GEMM (ConvGemm) in a plain triple loop, on the CPU.
void conv2d_implicit_gemm_cpu(ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                              const ConvGeometry& g, const Tensor& out);

// ---- the CUDA backend ------------------------------------------------------------------------
// A backend is a number: a handwritten version 1 .. kConvCudaVersions, or kConvCudnn. The choice
// is declared in every build so that the CPU tests check the parsing and its errors.
inline constexpr int kConvCudaVersions = 3;  // 1 direct, 2 implicit GEMM, 3 larger tiles
inline constexpr int kConvCudnn = 0;         // cuDNN (builds with CVG_WITH_CUDNN only)
inline constexpr int kConvCudnnFind = 10;    // cuDNN, algorithms timed per shape (ditto)
constexpr bool is_cudnn_backend(int backend) {
  return backend == kConvCudnn || backend == kConvCudnnFind;
}
// True when cvgrad was built with cuDNN.
bool conv_cudnn_built();
// The backend named by the values of CVG_CONV and CVG_CONV_VERSION (null or empty: unset; both
// unset: kConvCudnnFind in builds with cuDNN, else v2). A bad value, cudnn(-find) in a build
// without cuDNN, or CVG_CONV_VERSION with CVG_CONV=cudnn(-find) are errors listing the valid
// values.
int parse_conv_backend(const char* conv, const char* version);
// The backend conv2d uses on CUDA: the innermost live ConvBackendGuard's, else the
// environment's (parsed once). Named for the handwritten versions it first chose among.
int conv_cuda_version();
// One-line description of a backend, for benchmark labels and test messages.
const char* conv_cuda_version_name(int backend);
// Sets the backend for its lifetime (process-wide; for tests and benchmarks), then restores the
// previous choice. An unknown backend, or cuDNN in a build without it, is an error.
class ConvBackendGuard {
 public:
  explicit ConvBackendGuard(int backend);
  ~ConvBackendGuard();
  ConvBackendGuard(const ConvBackendGuard&) = delete;
  ConvBackendGuard& operator=(const ConvBackendGuard&) = delete;

 private:
  int previous_;
};

#ifdef CVG_WITH_CUDA
// Runs one pass with the given backend (a handwritten version, kConvCudnn or kConvCudnnFind).
void conv2d_cuda(int backend, ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                 const ConvGeometry& g, const Tensor& out);
// The cuDNN passes (kernels/conv_cudnn.cpp); an error in builds without cuDNN. search: time
// the candidate algorithms on the shape's first call (kConvCudnnFind) instead of asking the
// heuristics (ignored in deterministic mode).
void conv2d_cudnn(ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                  const ConvGeometry& g, const Tensor& out, bool search);
#endif

}  // namespace cvg
