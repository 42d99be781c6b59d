#pragma once
// 2-D pooling and unpooling, with PyTorch's names, arguments and output sizes.
//
// Layout: x is N x C x H x W (contiguous or not), float32 or float64. The forward ops also take
// an unbatched C x H x W tensor and then return unbatched results; the *_backward ops take
// batched tensors only. Pairs of sizes are {height, width}.
//
// Output size (regular pools), per axis, as PyTorch:
//     out = floor((in + 2 p - d (k - 1) - 1) / s) + 1          (ceil_mode: ceil instead of floor,
//     and then out - 1 when the last window would start past the input and its left padding)
// The division rounds toward -inf even when the numerator is negative (a kernel longer than
// the padded input): with ceil_mode such an input still gets one window, which hangs past its
// end (max_pool2d(kernel 3, stride 2, ceil_mode) of a 2 x 2 input is 1 x 1, as in PyTorch);
// without ceil_mode it gets none, an Error.
// Arguments are checked: kernel, stride and dilation >= 1, 0 <= padding <= kernel / 2, out >= 1,
// and every window must see at least one input position (a dilated kernel can otherwise sit
// entirely in the padding).
//
// Max pooling switches: int32, plane-local flat indices  h * W + w  into the input plane of the
// same (n, c) (so they need H * W < 2^31, checked). Ties: the first maximum in row-major window
// order wins (strict >). NaN propagates: a NaN beats every number and the first NaN wins.
// Padding acts as -inf (it never wins). Backward is a gather: each input sums grad_out over the
// outputs whose switch names it, in increasing output order, so it is deterministic on both
// devices and needs no atomics. The gradient of max_pool2d_backward with respect to its
// grad_out is a gather of the gradient-of-gradient at the switches (cvg::gather), so second
// derivatives flow.
//
// max_unpool2d(x, switches, output_size) scatters x into zeros of N x C x H x W at the switches
// (output_size = {H, W} is mandatory: several input sizes pool to the same output size).
// Every switch must lie in [0, H * W); an out-of-range switch (for instance output_size not
// the size the switches were computed for) is an Error naming its position and value.
// Overlapping windows (kernel > stride) can give two inputs the same switch. Rule, on every
// device: the LAST writer in row-major input order of the plane wins, i.e. the position takes
// the input with the largest plane-local index among those that target it (what a sequential
// scatter does). The CUDA kernels compute that winner explicitly, so the result is
// deterministic; the CPU runs the sequential scatter itself. Backward is a gather: d x[k] = grad_out[switch[k]] when k won that position,
// and 0 when its value was overwritten.
//
// Average pooling (no dilation, as in PyTorch): the window sum divided by the window size,
// counting padded positions when count_include_pad (but never the part of a ceil_mode window
// that hangs past the right padding), only in-input positions otherwise. Adaptive pooling:
// output o along an axis of size `in` pools [floor(o * in / out), ceil((o + 1) * in / out)).
//
// Every *_backward op is linear in grad_out and is itself differentiable: the gradient of
// avg_pool2d_backward is avg_pool2d, of adaptive_avg_pool2d_backward is adaptive_avg_pool2d, of
// max_unpool2d_backward is max_unpool2d, and max_unpool2d's backward is max_unpool2d_backward.
//
// Per-element math: kernels/pool_math.h. CPU loops: pool_cpu.cpp. CUDA: pool_cuda.cu.
#include <array>
#include <optional>

#include "core/tensor.h"
#include "kernels/pool_math.h"

namespace cvg {

using PoolSize2 = std::array<int64_t, 2>;  // {height, width}

struct PooledWithSwitches {
  Tensor values;
  Tensor switches;  // int32, plane-local h * W + w
};

// stride defaults to the kernel size.
PooledWithSwitches max_pool2d_with_indices(const Tensor& x, PoolSize2 kernel,
                                           std::optional<PoolSize2> stride = std::nullopt,
                                           PoolSize2 padding = {0, 0},
                                           PoolSize2 dilation = {1, 1}, bool ceil_mode = false);
Tensor max_pool2d(const Tensor& x, PoolSize2 kernel, std::optional<PoolSize2> stride = std::nullopt,
                  PoolSize2 padding = {0, 0}, PoolSize2 dilation = {1, 1}, bool ceil_mode = false);
// d input of max_pool2d: input_shape is N x C x H x W; grad_out and switches are the pooled
// shape of that geometry. A switch outside its output's window receives no gradient (switches
// are meant to come from max_pool2d with the same arguments).
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& switches,
                           const Shape& input_shape, PoolSize2 kernel, PoolSize2 stride,
                           PoolSize2 padding = {0, 0}, PoolSize2 dilation = {1, 1},
                           bool ceil_mode = false);

PooledWithSwitches adaptive_max_pool2d_with_indices(const Tensor& x, PoolSize2 output_size);
Tensor adaptive_max_pool2d(const Tensor& x, PoolSize2 output_size);
Tensor adaptive_max_pool2d_backward(const Tensor& grad_out, const Tensor& switches,
                                    const Shape& input_shape);

// switches has x's shape; output is N x C x output_size.
Tensor max_unpool2d(const Tensor& x, const Tensor& switches, PoolSize2 output_size);
// d x of max_unpool2d: grad_out is N x C x H x W, switches N x C x h x w; returns N x C x h x w.
Tensor max_unpool2d_backward(const Tensor& grad_out, const Tensor& switches);

Tensor avg_pool2d(const Tensor& x, PoolSize2 kernel, std::optional<PoolSize2> stride = std::nullopt,
                  PoolSize2 padding = {0, 0}, bool ceil_mode = false,
                  bool count_include_pad = true);
Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, PoolSize2 kernel,
                           PoolSize2 stride, PoolSize2 padding = {0, 0}, bool ceil_mode = false,
                           bool count_include_pad = true);

Tensor adaptive_avg_pool2d(const Tensor& x, PoolSize2 output_size);
Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape);

// Mean over H x W: N x C x H x W -> N x C x 1 x 1 (C x H x W -> C x 1 x 1). Built on mean(), so
// its gradient is mean's.
Tensor global_avg_pool2d(const Tensor& x);

// Raw kernels (no autograd, no checks): contiguous inputs, fresh contiguous outputs on the same
// device; switches and winners are int32. The geometry is the output's (see pool_math.h).
void max_pool2d_cpu(const Tensor& x, const PoolGeometry& g, const Tensor& values,
                    const Tensor& switches);
void max_pool2d_backward_cpu(const Tensor& grad_out, const Tensor& switches,
                             const PoolGeometry& g, const Tensor& grad_in);
void avg_pool2d_cpu(const Tensor& x, const PoolGeometry& g, const Tensor& out);
void avg_pool2d_backward_cpu(const Tensor& grad_out, const PoolGeometry& g,
                             const Tensor& grad_in);
// Fills winners (planes x out_plane) and returns the flat position of the first switch outside
// [0, out_plane), or -1 when all are in range. After a bad switch the winners are incomplete;
// the caller reports the error.
int64_t max_unpool2d_winners_cpu(const Tensor& switches, const UnpoolGeometry& g,
                                 const Tensor& winners);
void max_unpool2d_cpu(const Tensor& x, const Tensor& winners, const UnpoolGeometry& g,
                      const Tensor& out);
void max_unpool2d_backward_cpu(const Tensor& grad_out, const Tensor& switches,
                               const Tensor& winners, const UnpoolGeometry& g,
                               const Tensor& grad_in);
// The CPU path of max_unpool2d and its backward, without a winners tensor: a sequential scatter
// per plane in input order is the last-writer rule itself. Same results as the winners kernels
// above; each returns the flat position of the first switch outside [0, out_plane), or -1 (the
// outputs are then incomplete and the caller reports the error).
int64_t max_unpool2d_scatter_cpu(const Tensor& x, const Tensor& switches,
                                 const UnpoolGeometry& g, const Tensor& out);
int64_t max_unpool2d_backward_scatter_cpu(const Tensor& grad_out, const Tensor& switches,
                                          const UnpoolGeometry& g, const Tensor& grad_in);
#ifdef CVG_WITH_CUDA
void max_pool2d_cuda(const Tensor& x, const PoolGeometry& g, const Tensor& values,
                     const Tensor& switches);
void max_pool2d_backward_cuda(const Tensor& grad_out, const Tensor& switches,
                              const PoolGeometry& g, const Tensor& grad_in);
void avg_pool2d_cuda(const Tensor& x, const PoolGeometry& g, const Tensor& out);
void avg_pool2d_backward_cuda(const Tensor& grad_out, const PoolGeometry& g,
                              const Tensor& grad_in);
int64_t max_unpool2d_winners_cuda(const Tensor& switches, const UnpoolGeometry& g,
                                  const Tensor& winners);
void max_unpool2d_cuda(const Tensor& x, const Tensor& winners, const UnpoolGeometry& g,
                       const Tensor& out);
void max_unpool2d_backward_cuda(const Tensor& grad_out, const Tensor& switches,
                                const Tensor& winners, const UnpoolGeometry& g,
                                const Tensor& grad_in);
#endif

}  // namespace cvg
