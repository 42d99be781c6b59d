// CUDA row reductions: one block of 256 threads per row (grid-stride over rows). Each thread
// combines a strided slice of the row, then the block combines the 256 partials with warp
// shuffles and one shared-memory step. Deterministic: the combination order is fixed.
// Sums accumulate in the input type (float32 for float32), unlike the CPU's double; parity
// tests use tolerances for that. Same combine rules as reduce_cpu (kernels/reduce_math.h).
#include <cuda_runtime.h>

#include "kernels/reduce_math.h"

namespace cvg {

namespace {

template <ReduceKind K, typename T>
__device__ T warp_combine(T v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = reduce_combine<K, T>(v, __shfl_down_sync(0xffffffffu, v, offset));
  return v;
}

template <ReduceKind K, typename T>
__global__ void reduce_rows_kernel(const T* x, int64_t outer, int64_t inner, T* out) {
  __shared__ T warp_partials[32];
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* r = x + row * inner;
    T acc = reduce_identity<K, T>();
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) acc = reduce_combine<K, T>(acc, r[i]);
    acc = warp_combine<K, T>(acc);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_partials[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      acc = lane < static_cast<int>(blockDim.x / 32) ? warp_partials[lane] : reduce_identity<K, T>();
      acc = warp_combine<K, T>(acc);
      if (lane == 0) out[row] = acc;
    }
    __syncthreads();
  }
}

}  // namespace

void reduce_rows_cuda(ReduceKind kind, const Tensor& x, int64_t outer, int64_t inner,
                      const Tensor& out) {
  if (outer == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>(outer, 65535));
  dispatch_floating(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    switch (kind) {
      case ReduceKind::sum:
        reduce_rows_kernel<ReduceKind::sum, T><<<blocks, 256>>>(x.data<T>(), outer, inner, out.data<T>());
        break;
      case ReduceKind::max:
        reduce_rows_kernel<ReduceKind::max, T><<<blocks, 256>>>(x.data<T>(), outer, inner, out.data<T>());
        break;
      case ReduceKind::min:
        reduce_rows_kernel<ReduceKind::min, T><<<blocks, 256>>>(x.data<T>(), outer, inner, out.data<T>());
        break;
    }
  });
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, "reduce: CUDA kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace cvg
