// CUDA kernel for the unary ops: one thread per element, grid-stride loop over contiguous
// input and output; the math is unary_eval from kernels/unary_math.h, the same code the CPU
// loop runs. Matches unary_cpu in kernels/unary_cpu.cpp.
#include <cuda_runtime.h>

#include "kernels/unary.h"

namespace cvg {

namespace {
template <UnaryOp OP, typename T>
__global__ void unary_kernel(const T* x, T* out, int64_t n, UnaryParams p) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = unary_eval<OP, T>(x[i], p);
}
}  // namespace

void unary_cuda(UnaryOp op, const Tensor& x, const Tensor& out, const UnaryParams& p) {
  const int64_t n = x.numel();
  if (n == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((n + 255) / 256, 65535 * 8));
  dispatch_unary(op, [&](auto opc) {
    constexpr UnaryOp OP = decltype(opc)::value;
    dispatch_dtype(x.dtype(), "unary", [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool> ||
                    (!std::is_floating_point_v<T> && !unary_int_ok(OP))) {
        fail("unary op: not defined for ", dtype_name(x.dtype()), " tensors");
      } else {
        unary_kernel<OP, T><<<blocks, 256>>>(x.data<T>(), out.data<T>(), n, p);
      }
    });
  });
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, "unary: CUDA kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace cvg
