#pragma once
// The losses of Thewlis et al., "Unsupervised learning of object landmarks by factorized spatial
// embeddings" (ICCV 2017; thesis chapter 4), written as compositions of differentiable ops.
//
// Conventions (shared by every function here and by models/landmarks/warps.h):
//   p, p2   N x K x h x w probability maps (spatial_softmax of the detector's logits) of the
//           image x and of its warped copy x2 = x o g. Each (n, k) plane sums to 1.
//   grid    N x h x w x 2: grid[n, i, j] = G(v) = the position in x of output pixel v = (j, i)
//           of x2, as (x, y) in OUTPUT-PIXEL units of x (pixel (i, j)'s centre is (j, i)).
//           Output pixel units are the coordinate unit of every loss here: with the stride-2
//           detector one unit is two input pixels (kernels/... soft_argmax uses the same
//           convention with CoordUnits::Pixels).
// Every loss is averaged over the batch and over the K landmarks (the 1/K of the thesis).
#include "core/tensor.h"

namespace cvg::landmarks {

// Eq. 6, the probability-map equivariance loss
//     L = 1/K sum_r sum_{u,v} |u - G(v)|^2 p(u | x, r) p(v | x2, r),
// in the linear-time, centred form Var_p(u) + Var_p2(G) + |m_r - m2_r|^2 with m_r = E_p[u] and
// m2_r = E_p2[G(v)] (the centred form avoids the cancellation of the expanded one). It is 0 iff
// both maps are deltas at corresponding positions.
Tensor equivariance_loss(const Tensor& p, const Tensor& p2, const Tensor& grid);

// Eq. 8 with m x m sum-pooling: K - sum_c max_r P_cr, where P_cr is the mass of landmark r in
// cell c (cells of m x m output pixels, stride m; h and w must be multiples of m). 0 when every
// cell holds the mass of at most one landmark; K - 1 when all maps are identical and uniform.
Tensor diversity_loss(const Tensor& p, int64_t m);

// Eq. 5, the soft-argmax alignment loss 1/K sum_r |G(a_r) - b_r|^2 with a = E_p2[v] (in x2's
// output pixels) and b = E_p[u]; G is interpolated bilinearly at a (differentiable in a).
Tensor alignment_loss(const Tensor& p, const Tensor& p2, const Tensor& grid);

// Expected position E_p[u] of each map: N x K x 2 holding (x, y) in output pixels.
Tensor expected_position(const Tensor& p);

// Equivariance errors (evaluation, no gradient): N x K float64 tensor of |G(a_r) - b_r| in
// output pixels, a and b as in alignment_loss.
Tensor equivariance_errors(const Tensor& p, const Tensor& p2, const Tensor& grid);

// Their mean over n and r: the equivariance error that eval reports.
double equivariance_error(const Tensor& p, const Tensor& p2, const Tensor& grid);

// Spread of each map, sqrt(Var_p(u_x) + Var_p(u_y)) in output pixels (no gradient): N x K
// float64. Small for a sharp detector, 9.8 for a uniform 24 x 24 map.
Tensor map_spread(const Tensor& p);

}  // namespace cvg::landmarks
