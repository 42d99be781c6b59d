// CUDA kernels for the indexing ops (grid-stride loops; index values were range-checked on the
// host, see index.cpp).
//   index_select, gather : gathers, one thread per output element.
//   index_add, scatter_add, default path: one thread per source element, atomicAdd into the
//       destination. Fast, but when several sources hit one destination the float rounding
//       depends on the order the atomics land in, so results may differ between runs in the
//       last bits. Used only for float32/float64.
//   deterministic path (deterministic_algorithms() on, and always for integer dtypes):
//       index_add: one thread per destination element, summing its sources in increasing k
//           from a CSR list built on the host by a stable counting sort of index (index.cpp).
//       scatter_add: one thread per index "column" (all coordinates but dim fixed, see
//           index_math.h), walking the column's elements in increasing k; columns never share
//           a destination, so plain (non-atomic) adds are race-free. Parallelism is
//           index.numel() / index.size(dim), lower than the atomic path's.
//       Both add in exactly the order index_cpu.cpp does, so they match the CPU bitwise.
#include <cuda_runtime.h>

#include "core/cuda_launch.cuh"

#include <type_traits>

#include "kernels/index.h"

namespace cvg {

namespace {

template <typename T>
__global__ void index_select_kernel(const T* x, RowSplit rows, const int64_t* idx, int64_t m,
                                    T* out) {
  const int64_t n = rows.outer * m * rows.inner;
  CVG_GRID_STRIDE(l, n) {
    const int64_t i = l % rows.inner, k = (l / rows.inner) % m, o = l / (rows.inner * m);
    out[l] = x[(o * rows.size + idx[k]) * rows.inner + i];
  }
}

// One thread per source element (o, k, i).
template <typename T>
__global__ void index_add_atomic_kernel(T* out, RowSplit rows, const int64_t* idx, int64_t m,
                                        const T* src) {
  const int64_t n = rows.outer * m * rows.inner;
  CVG_GRID_STRIDE(l, n) {
    const int64_t i = l % rows.inner, k = (l / rows.inner) % m, o = l / (rows.inner * m);
    atomicAdd(out + (o * rows.size + idx[k]) * rows.inner + i, src[l]);
  }
}

// One thread per destination element (o, j, i); row j's sources are order[offsets[j]..].
template <typename T>
__global__ void index_add_ordered_kernel(T* out, RowSplit rows, const int64_t* offsets,
                                         const int64_t* order, int64_t m, const T* src) {
  const int64_t n = rows.outer * rows.size * rows.inner;
  CVG_GRID_STRIDE(l, n) {
    const int64_t i = l % rows.inner, j = (l / rows.inner) % rows.size;
    const int64_t o = l / (rows.inner * rows.size);
    T acc = out[l];
    for (int64_t p = offsets[j]; p < offsets[j + 1]; ++p)
      acc = acc + src[(o * m + order[p]) * rows.inner + i];
    out[l] = acc;
  }
}

template <typename T>
__global__ void gather_kernel(const T* x, IndexedGeometry geom, const int64_t* idx, T* out,
                              int64_t n) {
  CVG_GRID_STRIDE(l, n) out[l] = x[geom.at(l, idx[l])];
}

template <typename T>
__global__ void scatter_add_atomic_kernel(T* out, IndexedGeometry geom, const int64_t* idx,
                                          const T* src, int64_t n) {
  CVG_GRID_STRIDE(l, n) atomicAdd(out + geom.at(l, idx[l]), src[l]);
}

template <typename T>
__global__ void scatter_add_column_kernel(T* out, IndexedGeometry geom, RowSplit cols,
                                          const int64_t* idx, const T* src) {
  const int64_t n = cols.outer * cols.inner;
  CVG_GRID_STRIDE(c, n) {
    for (int64_t k = 0; k < cols.size; ++k) {
      const int64_t l = column_element(cols, c, k);
      T* dst = out + geom.at(l, idx[l]);
      *dst = *dst + src[l];
    }
  }
}

}  // namespace

void index_select_cuda(const Tensor& x, const RowSplit& rows, const Tensor& index,
                       const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), "index_select", [&](auto tag) {
    using T = decltype(tag);
    index_select_kernel<T><<<grid_blocks(n), kBlockThreads>>>(x.data<T>(), rows, index.data<int64_t>(),
                                                        index.numel(), out.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("index_select");
}

void index_add_cuda(const Tensor& out, const RowSplit& rows, const Tensor& index,
                    const Tensor& src, const Tensor& by_dest_offsets, const Tensor& by_dest_order) {
  const int64_t m = index.numel();
  if (src.numel() == 0) return;
  dispatch_dtype(out.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    if (by_dest_offsets.defined()) {
      const int64_t n = out.numel();
      index_add_ordered_kernel<T><<<grid_blocks(n), kBlockThreads>>>(
          out.data<T>(), rows, by_dest_offsets.data<int64_t>(), by_dest_order.data<int64_t>(), m,
          src.data<T>());
    } else if constexpr (std::is_floating_point_v<T>) {
      index_add_atomic_kernel<T><<<grid_blocks(src.numel()), kBlockThreads>>>(
          out.data<T>(), rows, index.data<int64_t>(), m, src.data<T>());
    } else {
      fail("index_add: the atomic CUDA path supports float32/float64 only, got ",
           dtype_name(out.dtype()));
    }
  });
  CVG_CUDA_CHECK_LAUNCH("index_add");
}

void gather_cuda(const Tensor& x, const IndexedGeometry& geom, const Tensor& index,
                 const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), "gather", [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<grid_blocks(n), kBlockThreads>>>(static_cast<const T*>(x.storage()->data()),
                                                  geom, index.data<int64_t>(), out.data<T>(), n);
  });
  CVG_CUDA_CHECK_LAUNCH("gather");
}

void scatter_add_cuda(const Tensor& out, const IndexedGeometry& geom, const Tensor& index,
                      const Tensor& src, bool deterministic) {
  const int64_t n = index.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), "scatter_add", [&](auto tag) {
    using T = decltype(tag);
    if (deterministic) {
      const RowSplit cols = index.dim() == 0 ? RowSplit{} : row_split(index.shape(), geom.dim);
      scatter_add_column_kernel<T><<<grid_blocks(cols.outer * cols.inner), kBlockThreads>>>(
          out.data<T>(), geom, cols, index.data<int64_t>(), src.data<T>());
    } else if constexpr (std::is_floating_point_v<T>) {
      scatter_add_atomic_kernel<T><<<grid_blocks(n), kBlockThreads>>>(
          out.data<T>(), geom, index.data<int64_t>(), src.data<T>(), n);
    } else {
      fail("scatter_add: the atomic CUDA path supports float32/float64 only, got ",
           dtype_name(out.dtype()));
    }
  });
  CVG_CUDA_CHECK_LAUNCH("scatter_add");
}

}  // namespace cvg
