// CUDA dropout: a grid-stride loop, one Philox draw per element with the same dropout_keep as
// the CPU loop (kernels/dropout.h), so both devices draw the same mask for a (seed, offset).
#include <cuda_runtime.h>

#include "core/cuda_launch.cuh"
#include "kernels/dropout.h"

namespace cvg {

namespace {

template <typename T>
__global__ void dropout_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n,
                               uint64_t seed, uint64_t offset, double p, T scale) {
  CVG_GRID_STRIDE(i, n) {
    y[i] = dropout_keep(seed, offset, static_cast<uint64_t>(i), p) ? x[i] * scale : T(0);
  }
}

}  // namespace

void dropout_cuda(const Tensor& x, const Tensor& out, uint64_t seed, uint64_t offset, double p,
                  double scale) {
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_floating(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<T><<<grid_blocks(n), kBlockThreads>>>(x.data<T>(), out.data<T>(), n, seed,
                                                         offset, p, static_cast<T>(scale));
  });
  CVG_CUDA_CHECK_LAUNCH("dropout");
}

}  // namespace cvg
