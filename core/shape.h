#pragma once
// Shapes and strides are vectors of int64, outermost dimension first (row-major). A tensor has
// at most kMaxDims dimensions; a 0-d tensor (a scalar) has an empty shape and one element.
// Negative dims count from the end, as in PyTorch.
#include <cstdint>
#include <vector>

namespace cvg {

using Shape = std::vector<int64_t>;
constexpr int kMaxDims = 8;

int64_t numel_of(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
// NumPy broadcasting of two shapes; throws Error naming `op` when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Wraps a possibly negative dim into [0, ndim); throws naming `op` when out of range.
int normalize_dim(int64_t dim, int64_t ndim, const char* op);
void check_shape(const Shape& shape, const char* op);

}  // namespace cvg
