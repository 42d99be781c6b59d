#pragma once
// Normalisation layers, as in PyTorch (torch.nn.functional.batch_norm / instance_norm /
// layer_norm):
//
//   batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)
//     x is N x C x (any number of spatial dims, possibly none). Each channel c is normalised
//     over the N x spatial elements it owns:  y = (x - mean_c) / sqrt(var_c + eps) * w_c + b_c.
//     training: mean_c and var_c are the batch statistics (biased variance, divide by n). When
//       running stats are given they are updated in place, outside autograd:
//         running_mean = (1 - momentum) running_mean + momentum mean_c
//         running_var  = (1 - momentum) running_var  + momentum var_c * n / (n - 1)
//       (the running variance is the unbiased one, as PyTorch). n = 1 is an Error: the
//       variance of one value says nothing.
//     eval: mean_c, var_c are the running stats (which must then be defined); they are constants
//       for autograd.
//   instance_norm(x, weight, bias, eps): the training-mode normalisation of each (n, c) plane
//     on its own (no running stats), with a per-channel affine.
//   layer_norm(x, normalized_shape, weight, bias, eps): normalises over the trailing dims
//     given by normalized_shape; weight/bias have that shape (an elementwise affine).
// weight / bias may be undefined (no scale / no shift). Floating dtypes only; weight, bias and
// running stats must have x's dtype and device.
//
// Statistics: two passes over each group (mean, then the mean of squared deviations), which
// stays accurate when |mean| >> std where a one-pass sum of squares would cancel. The CPU
// accumulates in double for every dtype; the CUDA kernel accumulates in the input type with a
// fixed block reduction order. Both are deterministic (no atomics): each group is reduced by
// one CPU task / one CUDA block, or, for few large groups on CUDA, by one block per chunk of
// a group (two passes over the chunk) whose moments are merged in chunk order (norm_merge).
//
// Gradients flow to x, weight and bias (never to the running stats). The training-mode
// backward is the fused closed form
//   dx = invstd * (gy - mean(gy) - xhat * mean(gy * xhat)),  gy = dy * w
//   dw = sum(dy * xhat), db = sum(dy)   (sums and means over each group)
// evaluated by one kernel (norm_backward_cpu / _cuda) when the backward runs without
// create_graph. Under create_graph the same formula is built from differentiable ops (with
// the statistics recomputed from x), so second derivatives are exact as well.
//
// CPU: norm_cpu.cpp. CUDA: norm_cuda.cu. Index math and formulas: norm_math.h.
#include "core/tensor.h"
#include "kernels/norm_math.h"

namespace cvg {

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum = 0.1, double eps = 1e-5);
Tensor instance_norm(const Tensor& x, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                     double eps = 1e-5);
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// ---- raw kernels (no autograd, no checks) ----
// x and y are contiguous [A, B, D] (see NormGeom). weight / bias: undefined or contiguous,
// indexed by channel (B entries) or by d (D entries) per geom.weight_on_d.
// compute_stats: writes each group's mean and invstd = 1 / sqrt(var + eps) (and the biased var
// when `var` is defined), then y. Otherwise reads mean and invstd (eval mode) and writes y.
// mean / invstd / var are contiguous with geom.groups() entries of x's dtype.
void norm_forward_cpu(const Tensor& x, const NormGeom& geom, const Tensor& weight,
                      const Tensor& bias, double eps, bool compute_stats, const Tensor& mean,
                      const Tensor& invstd, const Tensor& var, const Tensor& y);
// batch_norm's running-statistics update (norm_running_update of norm_math.h) in place, one
// channel per element: all four contiguous, C entries of one dtype; n values per channel.
void norm_running_update_cpu(const Tensor& running_mean, const Tensor& running_var,
                             const Tensor& mean, const Tensor& var, double momentum, int64_t n);
// Training-mode backward. dy, x contiguous [A, B, D]. Writes dx when defined, and, when
// defined (only for !geom.weight_on_d), each group's sum(dy) and sum(dy * xhat).
void norm_backward_cpu(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                       const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                       const Tensor& dx, const Tensor& sum_dy, const Tensor& sum_dy_xhat);
// layer_norm's weight and bias gradients (geom.weight_on_d, B = 1): column sums over the A rows,
// dw[d] = sum_a dy[a, d] * xhat[a, d] and db[d] = sum_a dy[a, d]; either may be undefined.
void norm_affine_grad_cpu(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                          const Tensor& mean, const Tensor& invstd, const Tensor& dw,
                          const Tensor& db);
#ifdef CVG_WITH_CUDA
void norm_affine_grad_cuda(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                           const Tensor& mean, const Tensor& invstd, const Tensor& dw,
                           const Tensor& db);
void norm_forward_cuda(const Tensor& x, const NormGeom& geom, const Tensor& weight,
                       const Tensor& bias, double eps, bool compute_stats, const Tensor& mean,
                       const Tensor& invstd, const Tensor& var, const Tensor& y);
void norm_running_update_cuda(const Tensor& running_mean, const Tensor& running_var,
                              const Tensor& mean, const Tensor& var, double momentum, int64_t n);
void norm_backward_cuda(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                        const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                        const Tensor& dx, const Tensor& sum_dy, const Tensor& sum_dy_xhat);
#endif

}  // namespace cvg
