// CUDA kernels for the shape ops. All are gathers: one thread per output element (grid-stride
// loop), each reading the input element(s) it needs, so no two threads write the same place
// and the results are deterministic.
//   cat      : inputs are passed in batches of up to kCatBatch pointers by value; a thread
//              finds its input by scanning the batch's start offsets along dim.
//   pad      : PadGeometry::source (shape_math.h) maps the output element to its input element
//              or to the fill value.
//   pad_fold : one thread per input element of one dim, summing the gradient over
//              pad_preimage's ranges in the same order as pad_fold_cpu.
//   flip     : FlipGeometry::source.
// The index maps are the ones the CPU loops in shape_cpu.cpp use.
#include <cuda_runtime.h>

#include "core/cuda_launch.cuh"

#include "kernels/shape.h"

namespace cvg {

namespace {

constexpr int kCatBatch = 32;

// Up to kCatBatch contiguous inputs; input k covers [start[k], start[k+1]) of out's dim.
template <typename T>
struct CatBatch {
  const T* ptr[kCatBatch];
  int64_t start[kCatBatch + 1];
  int count;
};

// Writes out's slab [batch.start[0], batch.start[count]) along dim, viewed as
// [outer, width, inner] with width = start[count] - start[0].
template <typename T>
__global__ void cat_kernel(CatBatch<T> batch, T* out, int64_t outer, int64_t out_size,
                           int64_t inner) {
  const int64_t width = batch.start[batch.count] - batch.start[0];
  const int64_t n = outer * width * inner;
  CVG_GRID_STRIDE(l, n) {
    const int64_t i = l % inner;
    const int64_t c = batch.start[0] + (l / inner) % width;  // position along dim in out
    const int64_t o = l / (inner * width);
    int k = 0;
    while (c >= batch.start[k + 1]) ++k;
    const int64_t size_k = batch.start[k + 1] - batch.start[k];
    out[(o * out_size + c) * inner + i] =
        batch.ptr[k][(o * size_k + (c - batch.start[k])) * inner + i];
  }
}

template <typename T>
__global__ void pad_kernel(const T* x, PadGeometry geom, T fill, T* out, int64_t n) {
  CVG_GRID_STRIDE(l, n) {
    const int64_t src = geom.source(l);
    out[l] = src < 0 ? fill : x[src];
  }
}

template <typename T>
__global__ void pad_fold_kernel(const T* g, RowSplit rows, int64_t out_size, int64_t left,
                                PadMode mode, T* out) {
  const int64_t n = rows.outer * rows.size * rows.inner;
  CVG_GRID_STRIDE(l, n) {
    const int64_t c = l % rows.inner;
    const int64_t j = (l / rows.inner) % rows.size;
    const int64_t o = l / (rows.inner * rows.size);
    const PadRanges r = pad_preimage(j, rows.size, left, out_size, mode);
    T acc = T(0);
    for (int k = 0; k < r.count; ++k)
      for (int64_t i = r.lo[k]; i < r.hi[k]; ++i) acc += g[(o * out_size + i) * rows.inner + c];
    out[l] = acc;
  }
}

template <typename T>
__global__ void flip_kernel(const T* x, FlipGeometry geom, T* out, int64_t n) {
  CVG_GRID_STRIDE(l, n) out[l] = x[geom.source(l)];
}

}  // namespace

void cat_cuda(const TensorList& xs, int dim, const Tensor& out) {
  const RowSplit orow = row_split(out.shape(), dim);
  if (out.numel() == 0) return;
  dispatch_dtype(out.dtype(), "cat", [&](auto tag) {
    using T = decltype(tag);
    int64_t start = 0;
    for (size_t first = 0; first < xs.size(); first += kCatBatch) {
      CatBatch<T> batch{};
      batch.count = static_cast<int>(std::min<size_t>(kCatBatch, xs.size() - first));
      batch.start[0] = start;
      for (int k = 0; k < batch.count; ++k) {
        const Tensor& x = xs[first + k];
        batch.ptr[k] = x.data<T>();
        start += x.shape()[dim];
        batch.start[k + 1] = start;
      }
      const int64_t n = orow.outer * (start - batch.start[0]) * orow.inner;
      if (n == 0) continue;
      cat_kernel<T><<<grid_blocks(n), kBlockThreads>>>(batch, out.data<T>(), orow.outer, orow.size,
                                                 orow.inner);
      CVG_CUDA_CHECK_LAUNCH("cat");
    }
  });
}

void pad_cuda(const Tensor& x, const PadGeometry& geom, double value, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), "pad", [&](auto tag) {
    using T = decltype(tag);
    pad_kernel<T><<<grid_blocks(n), kBlockThreads>>>(static_cast<const T*>(x.storage()->data()), geom,
                                               static_cast<T>(value), out.data<T>(), n);
  });
  CVG_CUDA_CHECK_LAUNCH("pad");
}

void pad_fold_cuda(const Tensor& g, const RowSplit& rows, int64_t out_size, int64_t left,
                   PadMode mode, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_floating(out.dtype(), "pad_backward", [&](auto tag) {
    using T = decltype(tag);
    pad_fold_kernel<T><<<grid_blocks(n), kBlockThreads>>>(g.data<T>(), rows, out_size, left, mode,
                                                    out.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("pad_backward");
}

void flip_cuda(const Tensor& x, const FlipGeometry& geom, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_dtype(out.dtype(), "flip", [&](auto tag) {
    using T = decltype(tag);
    flip_kernel<T><<<grid_blocks(n), kBlockThreads>>>(static_cast<const T*>(x.storage()->data()), geom,
                                                out.data<T>(), n);
  });
  CVG_CUDA_CHECK_LAUNCH("flip");
}

}  // namespace cvg
