#pragma once
// Reductions over any set of dims (negative dims count from the end; an empty list means all
// dims; a dim may not repeat). keepdim keeps reduced dims with size 1. A 0-d tensor accepts
// dim 0 or -1 and reduces over nothing (as PyTorch). Inputs must be floating point (float32,
// float64); the CPU accumulates sums, variances, logsumexp and norms in double, the GPU in the
// input type. Every op below is differentiable unless noted, with backward formulas written in
// differentiable ops (so create_graph gives second derivatives).
//
//   sum, mean           : backward expands the gradient back.
//   sum_to(x, shape)    : sums the dims that broadcasting stretched, so that the result has
//                         `shape`; the adjoint of expand, used by every broadcasting backward.
//   var(x, dims, unbiased, keepdim)
//                       : sum (x - mean)^2 / (n - 1) (unbiased, Bessel's correction) or / n.
//                         NaN when n - ddof <= 0. Gradient 2 (x - mean) / (n - ddof).
//   std_dev             : sqrt(var) (named std_dev to stay clear of namespace std).
//   amax, amin          : the maximum (minimum) over any dims. NaN propagates. The gradient is
//                         split evenly among tied extrema (each of k tied elements gets g / k);
//                         a row whose result is NaN gets NaN gradients.
//   max(x, dim), min    : {values, indices} over ONE dim. indices are int64 positions along
//                         dim; on ties the first (lowest) index wins; a NaN wins over every
//                         number and the index is that of the first NaN. The gradient of
//                         values flows only to the element at the index (no splitting, unlike
//                         amax); indices carry no gradient.
//   argmax, argmin      : the indices of max/min (int64, not differentiable). Without a dim,
//                         the index into the flattened tensor.
//   logsumexp           : log(sum(exp(x))) computed max-shifted: no overflow for large x; -inf
//                         for an all -inf (or empty) row, +inf when an element is +inf.
//                         Gradient softmax(x) * g (NaN for rows whose result is infinite).
//   norm(x, p, dims)    : (sum |x|^p)^(1/p) for p > 0, and max |x| for p = infinity. Computed
//                         with a running scale, so it neither overflows nor underflows.
//                         Gradients: p = 1: sign(x) (0 at x = 0); p = 2: x / norm, defined as
//                         0 where the norm is 0 (the minimum-norm subgradient); other p:
//                         sign(x) (|x| / norm)^(p - 1) (NaN at x = 0 for p < 1); p = inf: as
//                         amax of |x|.
//   index_get_along_dim(x, index, dim) and index_put_along_dim(src, index, dim, size):
//                         one element per slice along dim. index (int64) has the shape of x
//                         except for size 1 at dim. get: out[.., 0, ..] = x[.., index[..], ..]
//                         (out has index's shape); put: zeros with size `size` at dim and
//                         src (index's shape) written at the indexed positions. Because each
//                         slice holds exactly one index they are each other's adjoint, which
//                         makes them the backward of max/min (and of each other).
//
// Note for code inside namespace cvg: this header declares cvg::max and cvg::min (Tensor
// overloads), which hide ::max/::min for unqualified calls; call std::max / std::min.
#include <utility>

#include "core/tensor.h"
#include "kernels/reduce_math.h"

namespace cvg {

using Dims = std::vector<int64_t>;

struct ValuesIndices {
  Tensor values;
  Tensor indices;  // int64
};

Tensor sum(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor sum_to(const Tensor& x, const Shape& shape);
Tensor var(const Tensor& x, const Dims& dims = {}, bool unbiased = true, bool keepdim = false);
Tensor std_dev(const Tensor& x, const Dims& dims = {}, bool unbiased = true, bool keepdim = false);
Tensor amax(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x);  // index into the flattened tensor, 0-d
Tensor argmin(const Tensor& x);
Tensor logsumexp(const Tensor& x, const Dims& dims = {}, bool keepdim = false);
Tensor norm(const Tensor& x, double p = 2.0, const Dims& dims = {}, bool keepdim = false);
Tensor index_get_along_dim(const Tensor& x, const Tensor& index, int64_t dim);
Tensor index_put_along_dim(const Tensor& src, const Tensor& index, int64_t dim, int64_t size);

// ---- raw kernels (no autograd) ----
// Parameters of the parameterised kinds: ddof for var, p for norm.
struct ReduceParams {
  double ddof = 0;
  double p = 2;
};
Tensor reduce_forward(ReduceKind kind, const Tensor& x, const Dims& dims, bool keepdim,
                      const char* name, const ReduceParams& params = {});
// argmax (is_max) / argmin over one dim; values only when want_values.
ValuesIndices argreduce_forward(bool is_max, const Tensor& x, int64_t dim, bool keepdim,
                                bool want_values, const char* name);
// x viewed as [outer, inner] (contiguous): out[o] = reduction of row x[o, :].
void reduce_rows_cpu(ReduceKind kind, const Tensor& x, int64_t outer, int64_t inner,
                     const Tensor& out, const ReduceParams& params = {});
// values (may be undefined) and indices (int64) of the arg reduction of each row.
void argreduce_rows_cpu(bool is_max, const Tensor& x, int64_t outer, int64_t inner,
                        const Tensor& values, const Tensor& indices);
// x contiguous [outer, n, inner], index contiguous int64 [outer, inner]; out contiguous
// [outer, inner] (get) or zero-filled [outer, n, inner] (put). Throw naming `op` on an index
// outside [0, n).
void index_get_cpu(const Tensor& x, const Tensor& index, int64_t outer, int64_t n, int64_t inner,
                   const Tensor& out, const char* op);
void index_put_cpu(const Tensor& src, const Tensor& index, int64_t outer, int64_t n,
                   int64_t inner, const Tensor& out, const char* op);
#ifdef CVG_WITH_CUDA
void reduce_rows_cuda(ReduceKind kind, const Tensor& x, int64_t outer, int64_t inner,
                      const Tensor& out, const ReduceParams& params = {});
void argreduce_rows_cuda(bool is_max, const Tensor& x, int64_t outer, int64_t inner,
                         const Tensor& values, const Tensor& indices);
void index_get_cuda(const Tensor& x, const Tensor& index, int64_t outer, int64_t n,
                    int64_t inner, const Tensor& out, const char* op);
void index_put_cuda(const Tensor& src, const Tensor& index, int64_t outer, int64_t n,
                    int64_t inner, const Tensor& out, const char* op);
#endif

// Normalised, sorted, unique dims for a reduction over `dims` of an ndim tensor (empty for a
// 0-d tensor, whose only valid dims 0 and -1 reduce nothing).
std::vector<int> reduction_dims(const Dims& dims, int64_t ndim, const char* op);
// Shape after reducing `rdims` (kept as 1 when keepdim).
Shape reduced_shape(const Shape& shape, const std::vector<int>& rdims, bool keepdim);

}  // namespace cvg
