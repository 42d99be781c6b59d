// CUDA kernels for the binary ops and where(): a grid-stride loop over the output elements, kIlp
// per thread and round with their loads issued first (ilp_loop, core/cuda_launch.cuh), each
// operand read through its broadcast Geometry (stride 0 in stretched dims). A dense fast
// path skips the index decoding when both inputs have the output's shape and are contiguous.
// The math is binary_eval from kernels/binary_math.h, the same code binary_cpu runs.
#include <cuda_runtime.h>

#include "core/geometry.h"
#include "core/cuda_launch.cuh"
#include "kernels/binary.h"

namespace cvg {

namespace {

// The two operand values of an element (what ilp_loop's load returns).
template <typename T>
struct Operands {
  T a, b;
};

template <BinaryOp OP, typename T, typename R>
__global__ void binary_dense_kernel(const T* a, const T* b, R* out, int64_t n) {
  ilp_loop(
      n, [&](int64_t i) { return Operands<T>{a[i], b[i]}; },
      [&](int64_t i, Operands<T> v) { out[i] = binary_eval<OP, T>(v.a, v.b); });
}

template <BinaryOp OP, typename T, typename R>
__global__ void binary_strided_kernel(const T* a, Geometry ga, const T* b, Geometry gb, R* out,
                                      int64_t n) {
  ilp_loop(
      n, [&](int64_t i) { return Operands<T>{a[ga.offset_of(i)], b[gb.offset_of(i)]}; },
      [&](int64_t i, Operands<T> v) { out[i] = binary_eval<OP, T>(v.a, v.b); });
}

template <typename T>
__global__ void where_kernel(const bool* c, Geometry gc, const T* a, Geometry ga, const T* b,
                             Geometry gb, T* out, int64_t n) {
  ilp_loop(
      n, [&](int64_t i) { return c[gc.offset_of(i)] ? a[ga.offset_of(i)] : b[gb.offset_of(i)]; },
      [&](int64_t i, T v) { out[i] = v; });
}

}  // namespace

void binary_cuda(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const bool dense = a.shape() == out.shape() && b.shape() == out.shape() && a.is_contiguous() &&
                     b.is_contiguous();
  const std::array<Geometry, 2> g = geometries_for<2>({&a, &b}, out.shape());
  const Geometry &ga = g[0], &gb = g[1];
  dispatch_binary(op, [&](auto opc) {
    constexpr BinaryOp OP = decltype(opc)::value;
    dispatch_dtype(a.dtype(), "binary", [&](auto tag) {
      using T = decltype(tag);
      using R = decltype(binary_eval<OP, T>(T{}, T{}));
      const T* pa = static_cast<const T*>(a.storage()->data());
      const T* pb = static_cast<const T*>(b.storage()->data());
      if (dense)
        binary_dense_kernel<OP, T, R><<<ilp_grid_blocks(n), kBlockThreads>>>(pa + a.offset(), pb + b.offset(),
                                                             out.data<R>(), n);
      else
        binary_strided_kernel<OP, T, R><<<ilp_grid_blocks(n), kBlockThreads>>>(pa, ga, pb, gb, out.data<R>(), n);
    });
  });
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, "binary: CUDA kernel launch failed: ", cudaGetErrorString(e));
}

void where_cuda(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const std::array<Geometry, 3> g = geometries_for<3>({&cond, &a, &b}, out.shape());
  const Geometry &gc = g[0], &ga = g[1], &gb = g[2];
  dispatch_dtype(out.dtype(), "where", [&](auto tag) {
    using T = decltype(tag);
    where_kernel<T><<<ilp_grid_blocks(n), kBlockThreads>>>(static_cast<const bool*>(cond.storage()->data()), gc,
                                            static_cast<const T*>(a.storage()->data()), ga,
                                            static_cast<const T*>(b.storage()->data()), gb,
                                            out.data<T>(), n);
  });
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, "where: CUDA kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace cvg
