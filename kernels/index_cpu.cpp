// CPU loops for the indexing ops. The copying ops (index_select, gather) write each output
// element once. The accumulating ops (index_add, scatter_add) split the work by "columns" of
// destinations that no other chunk touches, and walk each column's sources in increasing
// index position, so sums do not depend on the thread count.
#include <algorithm>

#include "core/parallel.h"
#include "kernels/index.h"

namespace cvg {

namespace {
// Rows per chunk so that a chunk copies about 16k elements.
int64_t grain_for(int64_t inner) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1));
}
}  // namespace

void index_select_cpu(const Tensor& x, const RowSplit& rows, const Tensor& index,
                      const Tensor& out) {
  const int64_t m = index.numel();
  const int64_t* idx = index.data<int64_t>();
  dispatch_dtype(out.dtype(), "index_select", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    // One output row (o, k) of `inner` contiguous elements per iteration.
    parallel_for(rows.outer * m, grain_for(rows.inner), [&](int64_t b, int64_t e) {
      for (int64_t ok = b; ok < e; ++ok) {
        const int64_t o = ok / m, k = ok % m;
        const T* src = px + (o * rows.size + idx[k]) * rows.inner;
        std::copy(src, src + rows.inner, po + ok * rows.inner);
      }
    });
  });
}

void index_add_cpu(const Tensor& out, const RowSplit& rows, const Tensor& index,
                   const Tensor& src) {
  const int64_t m = index.numel();
  const int64_t* idx = index.data<int64_t>();
  dispatch_dtype(out.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    T* po = out.data<T>();
    const T* ps = src.data<T>();
    // Destinations (o, *, i) for a fixed (o, i) are touched only by sources (o, *, i); chunks
    // of the flat (o, i) range are therefore disjoint. Within a chunk, loop k outermost per o so
    // that the innermost loop runs over contiguous i.
    parallel_for(rows.outer * rows.inner, 16384, [&](int64_t b, int64_t e) {
      for (int64_t o = b / rows.inner; o * rows.inner < e; ++o) {
        const int64_t i0 = std::max(b, o * rows.inner) - o * rows.inner;
        const int64_t i1 = std::min(e, (o + 1) * rows.inner) - o * rows.inner;
        for (int64_t k = 0; k < m; ++k) {
          T* dst = po + (o * rows.size + idx[k]) * rows.inner;
          const T* s = ps + (o * m + k) * rows.inner;
          for (int64_t i = i0; i < i1; ++i) dst[i] += s[i];
        }
      }
    });
  });
}

void gather_cpu(const Tensor& x, const IndexedGeometry& geom, const Tensor& index,
                const Tensor& out) {
  const int64_t* idx = index.data<int64_t>();
  dispatch_dtype(out.dtype(), "gather", [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.storage()->data());
    T* po = out.data<T>();
    parallel_for(out.numel(), 16384, [&](int64_t b, int64_t e) {
      for (int64_t l = b; l < e; ++l) po[l] = px[geom.at(l, idx[l])];
    });
  });
}

void scatter_add_cpu(const Tensor& out, const IndexedGeometry& geom, const Tensor& index,
                     const Tensor& src) {
  if (index.numel() == 0) return;
  const int64_t* idx = index.data<int64_t>();
  // A 0-d index is a single column of one element.
  const RowSplit cols = index.dim() == 0 ? RowSplit{} : row_split(index.shape(), geom.dim);
  dispatch_dtype(out.dtype(), "scatter_add", [&](auto tag) {
    using T = decltype(tag);
    T* po = out.data<T>();
    const T* ps = src.data<T>();
    // Columns (see index_math.h) are disjoint in their destinations: one chunk per range of
    // columns, each column's elements in increasing k.
    parallel_for(cols.outer * cols.inner, 4096, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c)
        for (int64_t k = 0; k < cols.size; ++k) {
          const int64_t l = column_element(cols, c, k);
          po[geom.at(l, idx[l])] += ps[l];
        }
    });
  });
}

}  // namespace cvg
