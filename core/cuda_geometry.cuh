#pragma once
// Tensor geometry passed by value to CUDA kernels: up to kMaxDims sizes and strides (elements).
// offset_of(linear index) decodes a row-major linear index of the iteration shape into the
// operand's storage offset; broadcast dims have stride 0.
#include <cstdint>

#include "core/shape.h"
#include "core/tensor.h"

namespace cvg {

struct Geometry {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {0};
  int64_t strides[kMaxDims] = {0};
  int64_t offset = 0;

  __host__ __device__ int64_t offset_of(int64_t linear) const {
    int64_t off = offset;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
      off += i * strides[d];
    }
    return off;
  }
};

// Geometry of `t` iterated over `shape` (t must broadcast to it).
inline Geometry geometry_for(const Tensor& t, const Shape& shape) {
  Geometry g;
  g.ndim = static_cast<int>(shape.size());
  g.offset = t.offset();
  const int lead = g.ndim - static_cast<int>(t.dim());
  for (int d = 0; d < g.ndim; ++d) {
    g.sizes[d] = shape[d];
    const int sd = d - lead;
    g.strides[d] = (sd < 0 || t.shape()[sd] == 1) ? 0 : t.strides()[sd];
  }
  return g;
}

}  // namespace cvg
