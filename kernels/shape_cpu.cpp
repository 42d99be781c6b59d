// CPU loops for the shape ops. cat copies whole rows; pad and flip gather one output element
// at a time through the index maps in shape_math.h (the ones the CUDA kernels use); the pad
// fold sums, for each input element, the gradient of the output elements that read it.
#include <algorithm>

#include "core/parallel.h"
#include "kernels/shape.h"

namespace cvg {

void cat_cpu(const TensorList& xs, int dim, const Tensor& out) {
  const RowSplit orow = row_split(out.shape(), dim);
  dispatch_dtype(out.dtype(), "cat", [&](auto tag) {
    using T = decltype(tag);
    T* po = out.data<T>();
    int64_t start = 0;  // where this input begins along dim
    for (const Tensor& x : xs) {
      const int64_t row = x.shape()[dim] * orow.inner;  // contiguous elements per outer block
      const T* px = x.data<T>();
      const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(row, 1));
      parallel_for(orow.outer, grain, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o)
          std::copy(px + o * row, px + (o + 1) * row, po + (o * orow.size + start) * orow.inner);
      });
      start += x.shape()[dim];
    }
  });
}

void pad_cpu(const Tensor& x, const PadGeometry& geom, double value, const Tensor& out) {
  dispatch_dtype(out.dtype(), "pad", [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.storage()->data());
    T* po = out.data<T>();
    const T fill = static_cast<T>(value);
    parallel_for(out.numel(), 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t src = geom.source(i);
        po[i] = src < 0 ? fill : px[src];
      }
    });
  });
}

void pad_fold_cpu(const Tensor& g, const RowSplit& rows, int64_t out_size, int64_t left,
                  PadMode mode, const Tensor& out) {
  dispatch_floating(out.dtype(), "pad_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = g.data<T>();
    T* po = out.data<T>();
    // One (outer, j) slice of `inner` destination elements per iteration; each destination is
    // written by exactly one iteration, in a fixed order of its sources.
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(rows.inner, 1));
    parallel_for(rows.outer * rows.size, grain, [&](int64_t b, int64_t e) {
      for (int64_t oj = b; oj < e; ++oj) {
        const int64_t o = oj / rows.size, j = oj % rows.size;
        const PadRanges r = pad_preimage(j, rows.size, left, out_size, mode);
        T* dst = po + oj * rows.inner;
        std::fill(dst, dst + rows.inner, T(0));
        for (int k = 0; k < r.count; ++k)
          for (int64_t i = r.lo[k]; i < r.hi[k]; ++i) {
            const T* src = pg + (o * out_size + i) * rows.inner;
            for (int64_t c = 0; c < rows.inner; ++c) dst[c] += src[c];
          }
      }
    });
  });
}

void flip_cpu(const Tensor& x, const FlipGeometry& geom, const Tensor& out) {
  dispatch_dtype(out.dtype(), "flip", [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.storage()->data());
    T* po = out.data<T>();
    parallel_for(out.numel(), 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) po[i] = px[geom.source(i)];
    });
  });
}

}  // namespace cvg
