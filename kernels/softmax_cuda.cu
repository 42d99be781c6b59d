// CUDA softmax / log_softmax over rows of a contiguous x read as [outer, D, inner].
// Every thread folds its elements into an online (max, sum) state (kernels/softmax_math.h,
// the same math as the CPU loop), states are merged across threads, and a second pass over
// the row writes the outputs. Three thread mappings:
//   - inner == 1, D <= 1024 : one warp per row (4 rows per 128-thread block). Lane l reads
//     elements l, l+32, ... (coalesced), the 32 states merge with a butterfly of shuffles.
//   - inner == 1, D > 1024  : one 256-thread block per row. Each thread reads a strided slice,
//     warps merge by shuffles, then the 8 warp states merge through shared memory
//     (softmax_block_state in kernels/softmax_cuda.cuh).
//   - inner > 1             : one thread per (outer, inner) column; the thread walks its row
//     with stride `inner`. Neighbouring threads have neighbouring inner indices, so each step
//     of a warp reads 32 consecutive elements.
// All grids stride over the rows. Merge order is fixed, so results are deterministic.
#include <cuda_runtime.h>

#include "kernels/softmax.h"
#include "kernels/softmax_cuda.cuh"

namespace cvg {

namespace {

template <typename T>
__device__ T softmax_value(T x, const SoftmaxState<T>& st, bool log) {
  return log ? log_softmax_out(x, st) : softmax_out(x, st);
}

template <typename T>
__global__ void softmax_warp_rows(const T* x, T* y, int64_t rows, int64_t D, bool log) {
  const int lane = threadIdx.x % 32;
  const int warps = blockDim.x / 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * warps + threadIdx.x / 32; row < rows;
       row += static_cast<int64_t>(gridDim.x) * warps) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    SoftmaxState<T> st = softmax_init<T>();
    for (int64_t j = lane; j < D; j += 32) softmax_add(st, xr[j]);
    st = softmax_warp_merge(st);
    for (int64_t j = lane; j < D; j += 32) yr[j] = softmax_value(xr[j], st, log);
  }
}

template <typename T>
__global__ void softmax_block_rows(const T* x, T* y, int64_t rows, int64_t D, bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    const SoftmaxState<T> st = softmax_block_state(xr, D);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) yr[j] = softmax_value(xr[j], st, log);
  }
}

template <typename T>
__global__ void softmax_columns(const T* x, T* y, int64_t outer, int64_t D, int64_t inner,
                                bool log) {
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < outer * inner;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = c / inner, i = c % inner;
    const T* xr = x + o * D * inner + i;
    T* yr = y + o * D * inner + i;
    SoftmaxState<T> st = softmax_init<T>();
    for (int64_t d = 0; d < D; ++d) softmax_add(st, xr[d * inner]);
    for (int64_t d = 0; d < D; ++d) yr[d * inner] = softmax_value(xr[d * inner], st, log);
  }
}

int grid_for(int64_t units, int64_t per_block) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((units + per_block - 1) / per_block, 65535)));
}

}  // namespace

void softmax_cuda(const Tensor& x, const Tensor& out, int64_t outer, int64_t D, int64_t inner,
                  bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  dispatch_floating(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = out.data<T>();
    if (inner == 1 && D <= 1024) {
      softmax_warp_rows<T><<<grid_for(outer, 4), 128>>>(px, py, outer, D, log);
    } else if (inner == 1) {
      softmax_block_rows<T><<<grid_for(outer, 1), 256>>>(px, py, outer, D, log);
    } else {
      softmax_columns<T><<<grid_for(outer * inner, 256), 256>>>(px, py, outer, D, inner, log);
    }
  });
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, name, ": CUDA kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace cvg
