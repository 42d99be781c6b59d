#pragma once
// Geometry: how a CUDA kernel finds an operand's element from a row-major linear index of the
// iteration shape. Up to kMaxDims sizes and strides (elements) and a storage offset; broadcast
// dims have stride 0. offset_of decodes the index with one FastDiv per dim (no 64-bit
// divisions: core/fast_div.h) and none for the outermost dim.
//
// geometries_for builds the geometries of all operands of one launch together, over a
// simplified iteration shape: size-1 dims dropped and each dim merged into its outer neighbour
// where every operand steps through the two as through one (stride[outer] == stride[inner] *
// size[inner]). A contiguous tensor becomes one dim, an N x C x H x W + 1 x C x 1 x 1 broadcast
// three; the linear index and the offsets it maps to do not change. Host-compilable (CVG_HD),
// so the CPU tests check it against a plain unravel.
#include <array>
#include <cstdint>

#include "core/fast_div.h"
#include "core/hd.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace cvg {

struct Geometry {
  int ndim = 0;
  FastDiv sizes[kMaxDims];  // each holds its size (divisor())
  int64_t strides[kMaxDims] = {0};
  int64_t offset = 0;

  CVG_HD int64_t offset_of(int64_t linear) const {
    int64_t off = offset;
    for (int d = ndim - 1; d > 0; --d) {
      const int64_t q = sizes[d].div(linear);
      off += (linear - q * sizes[d].divisor()) * strides[d];
      linear = q;
    }
    return ndim > 0 ? off + linear * strides[0] : off;
  }
};

// The geometries of the operands ts (each must broadcast to shape), iterated together over shape.
template <size_t N>
std::array<Geometry, N> geometries_for(const std::array<const Tensor*, N>& ts, const Shape& shape) {
  const int nd = static_cast<int>(shape.size());
  int64_t st[N][kMaxDims];
  for (size_t k = 0; k < N; ++k) {
    const Tensor& t = *ts[k];
    const int lead = nd - static_cast<int>(t.dim());
    for (int d = 0; d < nd; ++d) {
      const int sd = d - lead;
      st[k][d] = (sd < 0 || t.shape()[sd] == 1) ? 0 : t.strides()[sd];
    }
  }
  // Simplify: keep (size, strides) of the dims that survive, outermost first.
  int kept = 0;
  int64_t size[kMaxDims];
  int64_t kst[N][kMaxDims];
  for (int d = 0; d < nd; ++d) {
    if (shape[d] == 1) continue;
    bool merge = kept > 0;
    for (size_t k = 0; k < N && merge; ++k) merge = kst[k][kept - 1] == st[k][d] * shape[d];
    if (merge) {
      size[kept - 1] *= shape[d];
      for (size_t k = 0; k < N; ++k) kst[k][kept - 1] = st[k][d];
      continue;
    }
    size[kept] = shape[d];
    for (size_t k = 0; k < N; ++k) kst[k][kept] = st[k][d];
    ++kept;
  }
  std::array<Geometry, N> gs;
  for (size_t k = 0; k < N; ++k) {
    gs[k].ndim = kept;
    gs[k].offset = ts[k]->offset();
    for (int d = 0; d < kept; ++d) {
      gs[k].sizes[d] = FastDiv::for_size(size[d]);
      gs[k].strides[d] = kst[k][d];
    }
  }
  return gs;
}

inline Geometry geometry_for(const Tensor& t, const Shape& shape) {
  return geometries_for<1>({&t}, shape)[0];
}

}  // namespace cvg
