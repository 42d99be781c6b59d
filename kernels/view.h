#pragma once
// View ops: results share storage with their input and differ only in shape, strides and
// offset (see core/tensor.h). Each is differentiable; the backward of a view is another view
// or a reduction (expand -> sum_to), so views cost no copies in either direction.
//   reshape     : a view when the input is contiguous, otherwise a contiguous copy first.
//                 One size may be -1 (inferred).
//   permute     : dims reordered; out.dim(i) = in.dim(perm[i]).
//   slice       : elements start, start+step, ... < end along dim (negative start/end count
//                 from the end and are clamped to the size, as Python slicing; step > 0).
//   expand      : size-1 dims stretched with stride 0; -1 keeps a size; new leading dims allowed.
#include "core/tensor.h"

namespace cvg {

Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& perm);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor squeeze(const Tensor& x, int64_t dim);  // dim must have size 1
Tensor squeeze(const Tensor& x);               // all size-1 dims
Tensor expand(const Tensor& x, const Shape& shape);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t dim, int64_t index);  // removes dim

}  // namespace cvg
