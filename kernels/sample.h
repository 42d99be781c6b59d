#pragma once
// Resampling images at arbitrary points: grid_sample, affine_grid, flow_warp and interpolate,
// with PyTorch's conventions. (Thin-plate-spline grids: kernels/tps.h.)
//
// grid_sample(input, grid, mode, padding, align_corners)
//   input N x C x H x W, grid N x Ho x Wo x 2 (any strides), same floating dtype and device;
//   output N x C x Ho x Wo. grid[n, i, j] = (x, y) in normalised coordinates: x = -1 is the left
//   edge and +1 the right edge of the image, y = -1 the top and +1 the bottom. "Edge" means the
//   centre of the edge pixel when align_corners, its outer border otherwise:
//       align_corners:  px = (x + 1) / 2 * (W - 1)      otherwise:  px = ((x + 1) W - 1) / 2
//   (px = 0 is the centre of pixel 0). Bilinear interpolates the 4 pixels around (px, py);
//   Nearest takes the pixel at (nearbyint(px), nearbyint(py)), ties rounding to even (0.5 -> 0,
//   1.5 -> 2) as PyTorch. Padding says what lies outside: Zeros: 0; Border: the coordinate is
//   clamped to [0, W - 1]; Reflection: the coordinate is reflected about the edges (pixel centres
//   0 and W - 1 when align_corners, the outer borders -0.5 and W - 0.5 otherwise) and then
//   clamped. Non-finite grid values sample 0.
//
// Gradients. grid_sample is differentiable in input and grid (the grid gradient is 0 for
// Nearest, and 0 where padding clamps). Its gradients are the ops grid_sample_backward_input
// (linear in grad_out) and grid_sample_backward_grid, and both are differentiable in all their
// tensor arguments, so every second (and higher) derivative exists, including those with
// respect to the grid, which PyTorch does not provide. This works because the sample is
// multilinear in the tap weights: each derivative of it is the same sampling kernel with the
// weights of one axis replaced by their derivative (kernels/sample_math.h), and a derivative of
// order 2 along one axis is zero wherever it is defined. Like every piecewise formula, the
// derivatives are one-sided at the kinks: grid points at integer pixel coordinates, and where
// padding clamps or reflects.
//
// Determinism. CPU: every input gradient sums its contributions in increasing output order, in
// loops parallel over (n, c) planes, so results do not depend on the thread count. CUDA: the
// input gradient scatters with atomicAdd (fast, rounding depends on scheduling); with
// deterministic_algorithms() (core/determinism.h) it runs one thread per (n, c) plane that adds
// the contributions in increasing output order, the CPU's order (slow when N * C is small).
//
// affine_grid(theta, size, align_corners): theta N x 2 x 3, size = {N, C, H, W}; returns the
//   N x H x W x 2 grid  theta @ (x, y, 1)  over the base grid of H x W points (the pixel centres
//   in grid_sample's coordinates, so grid_sample(x, affine_grid(identity)) == x). A matmul,
//   differentiable in theta.
//
// flow_warp(image, flow): out[n, :, y, x] = bilinear sample of image[n] at pixel coordinates
//   (x + flow[n, 0, y, x], y + flow[n, 1, y, x]), zeros outside. image N x C x H x W, flow
//   N x 2 x H x W (pixels). A composition: the pixel grid plus the flow, permuted to
//   N x H x W x 2, sampled by grid_sample's kernels with pixel coordinates (no normalisation,
//   so no rounding from it and no special case for H or W = 1). Differentiable in both.
//
// interpolate(x, size | scale_factor, mode, align_corners): x N x C x H x W, PyTorch's
//   F.interpolate for 'nearest' (the legacy one) and 'bilinear'. Per axis, output o of `out`
//   reads input coordinate
//     nearest : min(floor(o * s), in - 1) with s = in / out (or 1 / scale_factor when given),
//               computed in float32 as PyTorch does so that the index agrees with it exactly
//     bilinear, align_corners : o * (in - 1) / (out - 1)   (0 when out == 1)
//     bilinear, otherwise      : max(0, (o + 0.5) * s - 0.5), s as for nearest
//   and bilinear clamps the upper tap to in - 1. With scale_factor the output size is
//   floor(in * scale_factor). Runs on grid_sample's kernels (pixel coordinates, Border padding)
//   with a constant grid broadcast over the batch; differentiable in x.
//   Known edge case with scale_factor (not fixed, documented): along an axis where
//   floor(in * scale_factor) == in (e.g. in 4, scale_factor 1.1696), nearest returns that axis
//   unchanged and, where out == 2 in, reads o / 2 (shortcuts taken before the formula above,
//   so floor(o / scale_factor) is not what it computes there), while bilinear applies the
//   formula with s = 1 / scale_factor and so resamples the axis ([0, 1, 2, 3] ->
//   [0, 0.78, 1.64, 2.49]). PyTorch 1.13 on the CPU copies such an axis for bilinear, and its
//   nearest result there depends on the channel count (C = 1: unchanged; C = 2: [0, 0, 1, 2]).
//   Passing the output size instead of scale_factor avoids the case: s = in / out = 1.
//
// Checks: bad shapes, dtypes, devices and empty inputs are cvg::Error naming the op.
#include <array>

#include "core/tensor.h"
#include "kernels/sample_math.h"

namespace cvg {

Tensor grid_sample(const Tensor& input, const Tensor& grid,
                   GridSampleMode mode = GridSampleMode::Bilinear,
                   GridPadding padding = GridPadding::Zeros, bool align_corners = false);
// d input of grid_sample: grad_out N x C x Ho x Wo, grid N x Ho x Wo x 2; returns input_shape.
Tensor grid_sample_backward_input(const Tensor& grad_out, const Tensor& grid,
                                  const Shape& input_shape,
                                  GridSampleMode mode = GridSampleMode::Bilinear,
                                  GridPadding padding = GridPadding::Zeros,
                                  bool align_corners = false);
// d grid of grid_sample: returns N x Ho x Wo x 2 (zeros for Nearest).
Tensor grid_sample_backward_grid(const Tensor& grad_out, const Tensor& input, const Tensor& grid,
                                 GridSampleMode mode = GridSampleMode::Bilinear,
                                 GridPadding padding = GridPadding::Zeros,
                                 bool align_corners = false);

Tensor affine_grid(const Tensor& theta, const Shape& size, bool align_corners = false);

Tensor flow_warp(const Tensor& image, const Tensor& flow);

enum class InterpMode { Nearest, Bilinear };
Tensor interpolate(const Tensor& x, std::array<int64_t, 2> size,
                   InterpMode mode = InterpMode::Nearest, bool align_corners = false);
Tensor interpolate(const Tensor& x, double scale_factor, InterpMode mode = InterpMode::Nearest,
                   bool align_corners = false);

// Raw kernels (no autograd, no checks). x, grad_out: contiguous N x C x H x W / N x C x Ho x Wo;
// grid: g.grid_stride; outputs fresh and contiguous on the same device. The derivative orders
// are g.order_x, g.order_y (sample_math.h). sample_adjoint_* overwrites grad_in.
void sample_cpu(const Tensor& x, const Tensor& grid, const SampleGeometry& g, const Tensor& out);
void sample_adjoint_cpu(const Tensor& grad_out, const Tensor& grid, const SampleGeometry& g,
                        const Tensor& grad_in);
void sample_grid_grad_cpu(const Tensor& grad_out, const Tensor& x, const Tensor& grid,
                          const SampleGeometry& g, const Tensor& grad_grid);
#ifdef CVG_WITH_CUDA
void sample_cuda(const Tensor& x, const Tensor& grid, const SampleGeometry& g, const Tensor& out);
void sample_adjoint_cuda(const Tensor& grad_out, const Tensor& grid, const SampleGeometry& g,
                         const Tensor& grad_in, bool deterministic);
void sample_grid_grad_cuda(const Tensor& grad_out, const Tensor& x, const Tensor& grid,
                           const SampleGeometry& g, const Tensor& grad_grid);
#endif

}  // namespace cvg
