#pragma once
// Reductions over any set of dims (negative dims count from the end; an empty list means all
// dims). keepdim keeps reduced dims with size 1. Sums accumulate in double on the CPU.
//   sum, mean         : differentiable; backward expands the gradient back.
//   sum_to(x, shape)  : sums the dims that broadcasting stretched, so that the result has
//                       `shape`; the adjoint of expand, used by every broadcasting backward.
#include "core/tensor.h"

namespace cvg {

using Dims = std::vector<int64_t>;

Tensor sum(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor sum_to(const Tensor& x, const Shape& shape);

// Raw reduction kernels (no autograd). ReduceKind selects the combine rule.
enum class ReduceKind : uint8_t { sum, max, min };
Tensor reduce_forward(ReduceKind kind, const Tensor& x, const Dims& dims, bool keepdim,
                      const char* name);
// x viewed as [outer, inner] (contiguous): out[o] = combine over i of x[o, i].
void reduce_rows_cpu(ReduceKind kind, const Tensor& x, int64_t outer, int64_t inner,
                     const Tensor& out);
#ifdef CVG_WITH_CUDA
void reduce_rows_cuda(ReduceKind kind, const Tensor& x, int64_t outer, int64_t inner,
                      const Tensor& out);
#endif

// Normalised, sorted, unique dims for a reduction over `dims` of an ndim tensor.
std::vector<int> reduction_dims(const Dims& dims, int64_t ndim, const char* op);
// Shape after reducing `rdims` (kept as 1 when keepdim).
Shape reduced_shape(const Shape& shape, const std::vector<int>& rdims, bool keepdim);

}  // namespace cvg
