// CUDA kernel for the unary ops: a grid-stride loop over contiguous input and output, kIlp
// elements per thread and round with their loads issued first (ilp_loop, core/cuda_launch.cuh);
// the math is unary_eval from kernels/unary_math.h, the same code the CPU loop runs. Matches
// unary_cpu in kernels/unary_cpu.cpp.
#include <cuda_runtime.h>

#include "core/cuda_launch.cuh"

#include "kernels/unary.h"

namespace cvg {

namespace {
template <UnaryOp OP, typename T>
__global__ void unary_kernel(const T* x, T* out, int64_t n, UnaryParams p) {
  ilp_loop(
      n, [&](int64_t i) { return x[i]; },
      [&](int64_t i, T v) { out[i] = unary_eval<OP, T>(v, p); });
}
}  // namespace

void unary_cuda(UnaryOp op, const Tensor& x, const Tensor& out, const UnaryParams& p) {
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_unary(op, [&](auto opc) {
    constexpr UnaryOp OP = decltype(opc)::value;
    dispatch_dtype(x.dtype(), "unary", [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool> ||
                    (!std::is_floating_point_v<T> && !unary_int_ok(OP))) {
        fail("unary op: not defined for ", dtype_name(x.dtype()), " tensors");
      } else {
        unary_kernel<OP, T><<<ilp_grid_blocks(n), kBlockThreads>>>(x.data<T>(), out.data<T>(),
                                                                   n, p);
      }
    });
  });
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, "unary: CUDA kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace cvg
