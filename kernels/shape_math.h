#pragma once
// Index arithmetic shared by the CPU loops (shape_cpu.cpp) and the CUDA kernels
// (shape_cuda.cu) of pad, pad_backward and flip. Everything here maps one output element to
// the input element(s) it comes from, so the two back ends cannot disagree.
#include <cstdint>

#include "core/hd.h"
#include "core/shape.h"

namespace cvg {

// How pad fills the border (PyTorch's F.pad modes). For a dim of size n, position s of the
// padded axis, measured from the first input element (s < 0 is the left border, s >= n the
// right one), reads input index:
//   constant  : s if 0 <= s < n, otherwise the fill value
//   reflect   : mirror without repeating the edge:  -1 -> 1,  n -> n-2   (needs pad < n)
//   replicate : the nearest edge element: clamp(s, 0, n-1)               (needs n > 0)
//   circular  : wrap around: -1 -> n-1,  n -> 0                          (needs pad <= n)
enum class PadMode : uint8_t { constant, reflect, replicate, circular };

// Input index read at padded position s, or -1 for a constant-mode border element.
// The host checks guarantee s lies within one reflection/wrap of [0, n).
CVG_HD int64_t pad_source_index(int64_t s, int64_t n, PadMode mode) {
  if (s >= 0 && s < n) return s;
  switch (mode) {
    case PadMode::constant: return -1;
    case PadMode::reflect: return s < 0 ? -s : 2 * (n - 1) - s;
    case PadMode::replicate: return s < 0 ? 0 : n - 1;
    case PadMode::circular: return s < 0 ? s + n : s - n;
  }
  return -1;
}

// The adjoint of pad_source_index along one dim: the output positions i (in [0, out)) that
// read input index j, where i = s + left. Written as up to three half-open ranges [lo, hi) in
// increasing order of i; returns how many. pad_backward sums the gradient over them, so each
// input element gathers its own gradient (no atomics, a fixed summation order).
struct PadRanges {
  int count = 0;
  int64_t lo[3];
  int64_t hi[3];
};

CVG_HD void pad_add_range(PadRanges& r, int64_t lo, int64_t hi, int64_t out) {
  lo = lo < 0 ? 0 : lo;
  hi = hi > out ? out : hi;
  if (lo < hi) {
    r.lo[r.count] = lo;
    r.hi[r.count] = hi;
    ++r.count;
  }
}

CVG_HD PadRanges pad_preimage(int64_t j, int64_t n, int64_t left, int64_t out, PadMode mode) {
  PadRanges r;
  switch (mode) {
    case PadMode::constant:
      pad_add_range(r, j + left, j + left + 1, out);
      break;
    case PadMode::reflect:  // s = -j, j, 2(n-1)-j; the mirrored ones exclude the edges
      if (j > 0) pad_add_range(r, left - j, left - j + 1, out);
      pad_add_range(r, j + left, j + left + 1, out);
      if (j < n - 1) pad_add_range(r, 2 * (n - 1) - j + left, 2 * (n - 1) - j + left + 1, out);
      break;
    case PadMode::replicate: {  // the edges also collect every border position on their side
      const int64_t lo = j == 0 ? 0 : j + left;
      const int64_t hi = j == n - 1 ? out : j + left + 1;
      pad_add_range(r, lo, hi, out);
      break;
    }
    case PadMode::circular:  // s = j - n, j, j + n
      pad_add_range(r, j - n + left, j - n + left + 1, out);
      pad_add_range(r, j + left, j + left + 1, out);
      pad_add_range(r, j + n + left, j + n + left + 1, out);
      break;
  }
  return r;
}

// Geometry of pad's forward gather: output element (i_0..i_k) reads input
//   offset + sum_d pad_source_index(i_d - left_d, in_sizes_d) * in_strides_d.
struct PadGeometry {
  int ndim = 0;
  PadMode mode = PadMode::constant;
  int64_t out_sizes[kMaxDims] = {0};
  int64_t in_sizes[kMaxDims] = {0};
  int64_t in_strides[kMaxDims] = {0};
  int64_t left[kMaxDims] = {0};
  int64_t in_offset = 0;

  // Input storage offset for output element `linear` (row-major), or -1 for the fill value.
  CVG_HD int64_t source(int64_t linear) const {
    int64_t off = in_offset;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % out_sizes[d];
      linear /= out_sizes[d];
      const int64_t j = pad_source_index(i - left[d], in_sizes[d], mode);
      if (j < 0) return -1;
      off += j * in_strides[d];
    }
    return off;
  }
};

// Geometry of flip: output element (i_0..i_k) reads input
//   offset + sum_d (flipped_d ? n_d - 1 - i_d : i_d) * strides_d.
struct FlipGeometry {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {0};
  int64_t strides[kMaxDims] = {0};
  bool flipped[kMaxDims] = {false};
  int64_t offset = 0;

  CVG_HD int64_t source(int64_t linear) const {
    int64_t off = offset;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
      off += (flipped[d] ? sizes[d] - 1 - i : i) * strides[d];
    }
    return off;
  }
};

// The row [outer, size, inner] decomposition used by cat and the per-dim pad fold: a
// contiguous tensor viewed as `outer` blocks of `size` slices of `inner` elements along dim.
struct RowSplit {
  int64_t outer = 1, size = 1, inner = 1;
};
inline RowSplit row_split(const Shape& shape, int dim) {
  RowSplit r;
  for (int d = 0; d < dim; ++d) r.outer *= shape[d];
  r.size = shape[dim];
  for (size_t d = dim + 1; d < shape.size(); ++d) r.inner *= shape[d];
  return r;
}

}  // namespace cvg
