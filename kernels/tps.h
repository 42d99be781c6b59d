#pragma once
// Thin-plate-spline (TPS) sampling grids for grid_sample (kernels/sample.h), in grid_sample's
// normalised coordinates: x, y in [-1, 1], x to the right, y down. The output grid has the
// base points of affine_grid (the pixel centres of an H x W image, with the same align_corners
// meaning), so grid_sample(image, tps_grid(...)) warps the image.
//
// tps_grid(control, displacement, size, align_corners)
//   control K x 2 (x, y), K >= 3 distinct points not all on one line; displacement N x K x 2.
//   Returns N x H x W x 2: for every batch item, the TPS of Bookstein (1989), kernel
//   U(r) = r^2 log r^2 (U(0) = 0), that maps control point c_k to c_k + displacement[n, k] and
//   bends as little as possible in between; sampled at the base grid. The map is
//       grid = base + M @ displacement[n]
//   with M the H*W x K matrix  M[p, k] = sum_j b(p)_j (L^-1)_{j k},  b(p) = (U(|p - c_1|), ...,
//   U(|p - c_K|), 1, x, y)  and L the (K + 3) x (K + 3) TPS system [[U(|c_i - c_j|), P], [P^T, 0]],
//   P = rows (1, x_k, y_k). M is computed on the CPU in float64 (partial-pivoting elimination of
//   L; a singular L, from repeated or collinear control points, is an Error) and applied with
//   matmul, so the grid is differentiable in displacement (not in control). Because a TPS
//   reproduces affine maps exactly, zero displacement gives the base grid exactly, and at a
//   base point that is a control point the grid is c_k + displacement[n, k] (to rounding).
//
// tps_grid_weights(control, params, size, align_corners)
//   The parameterised form of Thewlis et al.'s random warps: params N x (K + 3) x 2 holds K kernel
//   weights W_j then the rows A_1, A_x, A_y of the affine part, and
//       grid(p) = sum_j W_j U2(|p - c_j|^2) + A_1 + x A_x + y A_y,   U2(r2) = r2 log(r2 + 1e-5)
//   (the 1e-5 keeps the log finite at a control point). A matmul of an H*W x (K + 3) basis with
//   params: differentiable in params. params = (0, ..., 0, [0 0], [1 0], [0 1]) is the identity.
//
// control, displacement / params: floating, same device (control is read back to the host).
#include <array>

#include "core/tensor.h"

namespace cvg {

Tensor tps_grid(const Tensor& control, const Tensor& displacement, std::array<int64_t, 2> size,
                bool align_corners = false);
Tensor tps_grid_weights(const Tensor& control, const Tensor& params, std::array<int64_t, 2> size,
                        bool align_corners = false);
// The H*W x K matrix M of tps_grid (float64, CPU): tps_grid = base + M @ displacement.
Tensor tps_basis(const Tensor& control, std::array<int64_t, 2> size, bool align_corners = false);

}  // namespace cvg
