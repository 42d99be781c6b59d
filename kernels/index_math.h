#pragma once
// Index arithmetic of gather and scatter_add, shared by index_cpu.cpp and index_cuda.cu.
#include <cstdint>

#include "core/hd.h"
#include "core/shape.h"
#include "kernels/shape_math.h"  // RowSplit

namespace cvg {

// Iterates over the index tensor's shape (row-major) and addresses the indexed tensor (x for
// gather, the output for scatter_add): index element (i_0..i_k) with value v refers to
//   offset + sum_{d != dim} i_d * strides_d + v * strides_dim.
struct IndexedGeometry {
  int ndim = 0;
  int dim = 0;
  int64_t sizes[kMaxDims] = {0};    // the index's shape
  int64_t strides[kMaxDims] = {0};  // the indexed tensor's strides
  int64_t offset = 0;

  CVG_HD int64_t at(int64_t linear, int64_t value) const {
    int64_t off = offset;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
      off += (d == dim ? value : i) * strides[d];
    }
    return off;
  }
};

// The index's elements split at dim as [outer, size, inner]: a "column" c = o * inner + i holds
// the elements (o, 0..size-1, i). Two elements of different columns always address different
// destinations in scatter_add (they differ in a coordinate other than dim), so walking each
// column in order of k is race-free and gives every destination a fixed summation order.
CVG_HD int64_t column_element(const RowSplit& rows, int64_t column, int64_t k) {
  const int64_t o = column / rows.inner, i = column % rows.inner;
  return (o * rows.size + k) * rows.inner + i;
}

}  // namespace cvg
