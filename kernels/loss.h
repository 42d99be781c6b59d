#pragma once
// Loss functions with PyTorch's names, argument order and semantics.
//
// Reduction: none (per-element / per-sample losses), mean, sum; batchmean (kl_div only: the sum
// divided by the batch size input.size(0), which is the mathematically correct KL average).
// mean of an empty tensor is NaN (0 / 0), as in PyTorch.
//
// Classification (class-index targets: int64 or int32 tensors):
//   nll_loss(input, target, weight, ignore_index, reduction)
//       input [N, C] or [N, C, d1, ...] log-probabilities (or [C] with a 0-d target), target
//       [N] or [N, d1, ...] with values in [0, C) or equal to ignore_index. Per target:
//       loss = -weight[t] * input[n, t] (weight defaults to ones; ignored targets give 0).
//       mean divides by the sum of weight[t] over the non-ignored targets (not by N); when all
//       targets are ignored that is 0 / 0 = NaN, as in PyTorch, and the gradient is 0 (as in
//       PyTorch: a batch without a valid target makes the optimizer step a no-op instead of
//       NaN parameters). The gradient is also 0 whenever that total weight is 0 for another
//       reason (weight[t] = 0 for every target, or weights that cancel; the loss is NaN or inf
//       as in PyTorch, whose gradient is NaN or inf there). weight is a constant: asking for
//       its gradient is an Error (PyTorch does not differentiate it either).
//   cross_entropy(logits, target, ...) = nll_loss(log_softmax(logits, 1), target, ...).
//       For [N, C] logits it runs as one fused kernel (cross_entropy_fused_*, below) that
//       also produces the gradient; other shapes use the composition itself, which remains
//       the reference the fused kernel is tested against.
//       A floating target of the logits' shape is read as class probabilities instead:
//       loss = -sum_c weight[c] * target[n, c] * log_softmax(logits)[n, c]; mean divides by the
//       number of samples N * d1 * ...; ignore_index does not apply.
//   A target outside [0, C) that is not ignore_index is an Error naming the op and the value.
//
// Regression (input and target must have the same shape; both may require grad):
//   mse_loss        : (x - y)^2
//   l1_loss         : |x - y|
//   smooth_l1_loss  : 0.5 (x - y)^2 / beta where |x - y| < beta, |x - y| - 0.5 beta elsewhere
//                     (beta = 0 is l1_loss; beta < 0 is an Error).
//
// Binary:
//   binary_cross_entropy_with_logits(x, t, weight, reduction, pos_weight)
//       loss = weight * ((1 - t) * softplus(x) + pos_weight * t * softplus(-x)),
//       softplus(z) = log(1 + e^z) evaluated as max(z, 0) + log1p(e^-|z|). With pos_weight = 1
//       this is the usual stable  max(x, 0) - x t + log(1 + e^-|x|),  written so that no
//       large terms cancel and the function stays smooth at x = 0 (its gradient is
//       sigmoid(x) - t there too). weight broadcasts to x; pos_weight broadcasts along the
//       last dim (one value per class).
//
// Distributions:
//   kl_div(input, target, reduction, log_target)
//       input holds log-probabilities; target probabilities (log-probabilities when
//       log_target). Pointwise loss target * (log(target) - input), 0 where target == 0 (as
//       xlogy does); exp(target) * (target - input) when log_target.
//
// Every loss is composed of differentiable ops, so second derivatives work. The dedicated
// kernels are nll_class_weights, which turns class indices into a weight map (a constant),
// and the fused cross-entropy, whose backward under create_graph switches to differentiable
// ops (softmax) so that second derivatives work there too.
#include <cstdint>

#include "core/tensor.h"

namespace cvg {

enum class Reduction : uint8_t { none, mean, sum, batchmean };
const char* reduction_name(Reduction r);

Tensor nll_loss(const Tensor& input, const Tensor& target, const Tensor& weight = Tensor(),
                int64_t ignore_index = -100, Reduction reduction = Reduction::mean);
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight = Tensor(),
                     int64_t ignore_index = -100, Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      Reduction reduction = Reduction::mean, double beta = 1.0);
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const Tensor& weight = Tensor(),
                                        Reduction reduction = Reduction::mean,
                                        const Tensor& pos_weight = Tensor());
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
              bool log_target = false);

// Raw kernel (no autograd): the weight map of nll_loss. For target [N, inner] (int32/int64,
// contiguous) returns W [N, C, inner] of `dtype` on target's device with
//     W[n, c, i] = weight[c] (1 without weight)  if target[n, i] == c and != ignore_index,
//                  0                               otherwise,
// and throws, naming `op`, on a target outside [0, C) that is not ignore_index.
// weight: undefined or a contiguous [C] tensor of `dtype` on the same device.
Tensor nll_class_weights(const Tensor& target, const Tensor& weight, int64_t N, int64_t C,
                         int64_t inner, int64_t ignore_index, DType dtype, const char* op);
// Device loops. W is zero-filled; they write the nonzero entries. The CPU loop returns the
// first invalid target it meets (ignore_index when all are valid); the CUDA one stores an
// invalid value in bad[0] (initialised to ignore_index by the caller, which reads it back).
int64_t nll_class_weights_cpu(const Tensor& target, const Tensor& weight, const Tensor& W,
                              int64_t C, int64_t inner, int64_t ignore_index);
#ifdef CVG_WITH_CUDA
void nll_class_weights_cuda(const Tensor& target, const Tensor& weight, const Tensor& W,
                            int64_t C, int64_t inner, int64_t ignore_index, const Tensor& bad);
#endif

// Fused softmax cross-entropy over a contiguous logits [N, C] with targets [N] (int32/int64,
// contiguous) and an optional contiguous weight [C] (kernels/loss_math.h). Fills
//     losses[n]     = w[t] * (logsumexp(x[n]) - x[n, t])
//     row_weight[n] = w[t]
//     dlogits[n, c] = w[t] * (softmax(x[n])[c] - [c == t])
// with zeros for rows whose target is ignore_index. cross_entropy uses it for [N, C] logits;
// the composition nll_loss(log_softmax(x, 1), ...) is the reference it is tested against.
// The CPU loop returns the first invalid target (ignore_index when all are valid); the CUDA
// one stores an invalid value in bad[0], as nll_class_weights_cuda does.
int64_t cross_entropy_fused_cpu(const Tensor& logits, const Tensor& target, const Tensor& weight,
                                int64_t ignore_index, const Tensor& losses,
                                const Tensor& row_weight, const Tensor& dlogits);
#ifdef CVG_WITH_CUDA
void cross_entropy_fused_cuda(const Tensor& logits, const Tensor& target, const Tensor& weight,
                              int64_t ignore_index, const Tensor& losses,
                              const Tensor& row_weight, const Tensor& dlogits, const Tensor& bad);
#endif

}  // namespace cvg
