#pragma once
// softmax(x, dim)     : exp(x - max) / sum(exp(x - max)) along dim (negative dims count from
//                       the end; a 0-d x is treated as a row of one element).
// log_softmax(x, dim) : x - max - log(sum(exp(x - max))), without forming softmax first, so it
//                       stays accurate where softmax underflows to 0.
// Both are max-shifted, so large logits do not overflow, and read each row once for the max
// and the sum (the online normaliser of kernels/softmax_math.h). Non-finite inputs behave as
// in PyTorch: -inf entries get probability 0; a row of only -inf gives NaN everywhere; a +inf
// entry gives NaN for itself (softmax([0, inf]) = [0, nan]); NaN poisons its row.
// Floating dtypes only. Backward (differentiable, so second derivatives work):
//   softmax     : dx = y * (g - sum(g * y, dim))
//   log_softmax : dx = g - exp(y) * sum(g, dim)
// CPU: softmax_cpu.cpp. CUDA: softmax_cuda.cu.
#include "core/tensor.h"

namespace cvg {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// Raw kernels (no autograd). x is contiguous and read as [outer, D, inner]: element (o, d, i)
// at o * D * inner + d * inner + i, the row being the D elements of a fixed (o, i). out is a
// contiguous tensor of the same shape.
void softmax_cpu(const Tensor& x, const Tensor& out, int64_t outer, int64_t D, int64_t inner,
                 bool log);
#ifdef CVG_WITH_CUDA
void softmax_cuda(const Tensor& x, const Tensor& out, int64_t outer, int64_t D, int64_t inner,
                  bool log);
#endif

}  // namespace cvg
