#pragma once
// Fused losses of the landmarks app (Thewlis et al. 2017, thesis chapter 4; issue 6): the
// probability-map equivariance loss and the m x m sum-pooled diversity loss, computed straight
// from the detector's logits, without materialising the N x K x h x w probability maps or the
// graph of the composition in models/landmarks/losses.h.
//
// Conventions (those of models/landmarks/losses.h):
//   logits, logits2  N x K x h x w, one spatial softmax per (n, k) plane (temperature 1):
//                    p(u | r) = exp(z_u - max z) / sum_v exp(z_v - max z).
//   grid             N x h x w x 2: grid[n, i, j] = G(v), the position in the first image of
//                    output pixel v = (j, i) of the second, as (x, y) in output-pixel units.
//   positions        pixel (i, j) of a plane sits at u = (x, y) = (j, i).
//
//   landmark_equivariance_loss(logits, logits2, grid)
//       == equivariance_loss(spatial_softmax(logits), spatial_softmax(logits2), grid)
//       =  mean over n, k of  Var_p(u) + Var_p2(G) + |m - m2|^2,   m = E_p[u], m2 = E_p2[G(v)]
//     computed per plane in the centred form (the variances about the plane's own mean, which
//     avoids the cancellation of E|u|^2 - |m|^2).
//   landmark_diversity_loss(logits, m)
//       == diversity_loss(spatial_softmax(logits), m)
//       =  K - mean over n of sum_c max_r P_cr,  P_cr the mass of landmark r in the m x m cell c
//     (cells at stride m; h and w must be multiples of m). Ties between landmarks in a cell go
//     to the first (smallest r); a NaN mass wins its cell (as amax, NaN propagates).
//
// Gradients (w.r.t. the logits only; the grid is data: an Error if it requires grad). With g
// the incoming gradient of the scalar loss, per plane:
//   equivariance, first map:  dz_u  = g/(NK) p_u (|u - m|^2 - Var_p(u) + 2 (u - m).(m - m2))
//                 second map: dz2_v = g/(NK) p2_v (|G_v - m2|^2 - Var_p2(G) + 2 (G_v - m2).(m2 - m))
//     (the thesis's p_u (|u - m2|^2 - E_p|u - m2|^2), expanded about m so that no term cancels);
//   diversity:  dz_u = -g/N p_u (win(u) - W_r),  win(u) = 1 when r is the winner of u's cell,
//     W_r = sum of P_cr over the cells r wins (the softmax backward of dp(u | r) = -1/N win(u)).
// The backward ops (landmark_equivariance_loss_backward, landmark_diversity_loss_backward)
// recompute the per-plane statistics from the logits, so the fused forward keeps only the
// logits (and the grid) alive for backward, never a probability map.
//
// Differentiable ONCE: the backward ops themselves have no derivative. Under create_graph the
// gradients they return carry a node that throws an Error ("... is differentiable once ...")
// when a second derivative is asked for. The unfused composition in models/landmarks/losses.h
// is the reference that is differentiable to any order.
//
// Kernels: landmark_loss_cpu.cpp (one parallel_for task per plane or per image, accumulation in
// double), landmark_loss_cuda.cu (one block per (n, k) plane for the equivariance loss, one per
// image for the diversity loss, warp-shuffle reductions in a fixed order, per-plane / per-image
// partial losses summed by one block in a fixed order: no atomics, deterministic). Both share
// the per-element math of landmark_loss_math.h.
#include <cstdint>

#include "core/tensor.h"

namespace cvg {

// Scalar (0-d) loss of the dtype of the logits. logits and logits2 of one floating dtype and
// shape N x K x h x w (all sizes >= 1), grid N x h x w x 2 of the same dtype, all on one device.
Tensor landmark_equivariance_loss(const Tensor& logits, const Tensor& logits2, const Tensor& grid);

// Scalar (0-d) loss; logits N x K x h x w floating, m >= 1 dividing h and w.
Tensor landmark_diversity_loss(const Tensor& logits, int64_t m);

// The gradients of landmark_equivariance_loss for an incoming gradient `grad` (one element),
// stacked as 2 x N x K x h x w: [0] w.r.t. logits, [1] w.r.t. logits2 (one kernel writes both,
// since each needs the statistics of both planes).
Tensor landmark_equivariance_loss_backward(const Tensor& grad, const Tensor& logits,
                                           const Tensor& logits2, const Tensor& grid);

// The gradient of landmark_diversity_loss w.r.t. logits (N x K x h x w) for an incoming `grad`.
Tensor landmark_diversity_loss_backward(const Tensor& grad, const Tensor& logits, int64_t m);

// ---- raw kernels (no autograd, no checks); all tensors contiguous, one floating dtype ----
// Equivariance: x, x2 [N, K, h, w], grid [N, h, w, 2]; out a 0-d tensor.
// Backward: g a 1-element tensor (read on the device), dx [2, N, K, h, w].
void landmark_equivariance_loss_cpu(const Tensor& x, const Tensor& x2, const Tensor& grid,
                                    const Tensor& out);
void landmark_equivariance_loss_backward_cpu(const Tensor& g, const Tensor& x, const Tensor& x2,
                                             const Tensor& grid, const Tensor& dx);
// Diversity: x [N, K, h, w]; out 0-d; dx [N, K, h, w].
void landmark_diversity_loss_cpu(const Tensor& x, int64_t m, const Tensor& out);
void landmark_diversity_loss_backward_cpu(const Tensor& g, const Tensor& x, int64_t m,
                                          const Tensor& dx);
#ifdef CVG_WITH_CUDA
void landmark_equivariance_loss_cuda(const Tensor& x, const Tensor& x2, const Tensor& grid,
                                     const Tensor& out);
void landmark_equivariance_loss_backward_cuda(const Tensor& g, const Tensor& x, const Tensor& x2,
                                              const Tensor& grid, const Tensor& dx);
void landmark_diversity_loss_cuda(const Tensor& x, int64_t m, const Tensor& out);
void landmark_diversity_loss_backward_cuda(const Tensor& g, const Tensor& x, int64_t m,
                                           const Tensor& dx);
#endif

}  // namespace cvg
