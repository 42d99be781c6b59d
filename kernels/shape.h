#pragma once
// Copying shape ops: concatenation, splitting, padding and flipping. Names and semantics follow
// PyTorch; negative dims count from the end. Every op is differentiable and its backward is
// built from differentiable ops, so second derivatives work:
//   cat(xs, dim)          : joins tensors that agree on every dim but `dim`; dtypes are promoted
//                           (float64 > float32 > int64 > ...). Backward: narrow views of the
//                           gradient. concat is an alias.
//   stack(xs, dim)        : inserts a new dim of size xs.size() at `dim` (in [-(n+1), n]) and
//                           concatenates; all shapes must be equal.
//   split(x, size, dim)   : views of `size` consecutive slices along dim (the last may be
//                           smaller). split(x, sizes, dim) cuts pieces of the given sizes, which
//                           must add up to x.size(dim). Both return views (no copy). Beware:
//                           split(x, {3}, dim) picks the integer overload, as in C++ a braced
//                           single value converts to int64_t; pass std::vector<int64_t>{3}.
//   chunk(x, chunks, dim) : split into pieces of ceil(size / chunks); may return fewer than
//                           `chunks` pieces (exactly `chunks` empty ones for an empty dim).
//   pad(x, pads, mode, v) : PyTorch's F.pad. pads = {left, right} for the last dim, then
//                           {top, bottom} for the one before it, and so on (at most 2 * x.dim()
//                           values). Negative pads crop. Modes: see PadMode in shape_math.h;
//                           reflect needs pad < size, circular pad <= size, replicate a non-empty
//                           dim, and only constant mode takes a fill value.
//   pad_backward(g, ...)  : the adjoint of pad: each input element sums the gradient of every
//                           output element that read it (the border folds back onto the edges
//                           for reflect/replicate/circular; constant borders get none). It is
//                           linear, so its own backward is pad with value 0.
//   flip(x, dims)         : reverses the order of elements along each dim in dims.
// CPU loops: shape_cpu.cpp. CUDA kernels: shape_cuda.cu. Index math: shape_math.h.
#include "core/tensor.h"
#include "kernels/shape_math.h"

namespace cvg {

Tensor cat(const TensorList& xs, int64_t dim = 0);
Tensor concat(const TensorList& xs, int64_t dim = 0);
Tensor stack(const TensorList& xs, int64_t dim = 0);
TensorList split(const Tensor& x, int64_t split_size, int64_t dim = 0);
TensorList split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
TensorList chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode = PadMode::constant,
           double value = 0.0);
Tensor pad_backward(const Tensor& g, const Shape& input_shape, const std::vector<int64_t>& pads,
                    PadMode mode);
Tensor flip(const Tensor& x, const std::vector<int64_t>& dims);

const char* pad_mode_name(PadMode mode);

// Raw kernels (no autograd, no checks). `out` is a fresh contiguous tensor.
// cat: inputs contiguous and of out's dtype; they fill out along `dim` in order.
void cat_cpu(const TensorList& xs, int dim, const Tensor& out);
// pad: out[i] = x[geometry.source(i)] or value; x is read through its strides.
void pad_cpu(const Tensor& x, const PadGeometry& geom, double value, const Tensor& out);
// One dim of pad_backward: g contiguous [outer, out_size, inner] -> out [outer, in_size, inner].
void pad_fold_cpu(const Tensor& g, const RowSplit& rows, int64_t out_size, int64_t left,
                  PadMode mode, const Tensor& out);
void flip_cpu(const Tensor& x, const FlipGeometry& geom, const Tensor& out);
#ifdef CVG_WITH_CUDA
void cat_cuda(const TensorList& xs, int dim, const Tensor& out);
void pad_cuda(const Tensor& x, const PadGeometry& geom, double value, const Tensor& out);
void pad_fold_cuda(const Tensor& g, const RowSplit& rows, int64_t out_size, int64_t left,
                   PadMode mode, const Tensor& out);
void flip_cuda(const Tensor& x, const FlipGeometry& geom, const Tensor& out);
#endif

}  // namespace cvg
