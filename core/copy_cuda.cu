// CUDA side of core/copy.h and core/accumulate.h.
// copy: a grid-stride loop over the destination elements (kIlp per thread and round, loads
// first: ilp_loop in core/cuda_launch.cuh), decoding the linear index into both operands'
// strided offsets and converting the element type. fill: the same loop without loads; add: a
// contiguous ilp_loop.
// Same semantics as copy_cpu in core/copy.cpp.
#include <cuda_runtime.h>

#include "core/accumulate.h"
#include "core/copy.h"
#include "core/cuda_check.h"
#include "core/cuda_launch.cuh"
#include "core/geometry.h"

namespace cvg {

namespace {

template <typename D, typename S>
__global__ void copy_kernel(D* out, Geometry go, const S* in, Geometry gi, int64_t n) {
  ilp_loop(
      n, [&](int64_t i) { return in[gi.offset_of(i)]; },
      [&](int64_t i, S v) { out[go.offset_of(i)] = static_cast<D>(v); });
}

template <typename T>
__global__ void fill_kernel(T* out, Geometry go, T value, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[go.offset_of(i)] = value;
}

template <typename T>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t n) {
  ilp_loop(
      n, [&](int64_t i) { return T(a[i] + b[i]); }, [&](int64_t i, T v) { out[i] = v; });
}

}  // namespace

void copy_into_cuda(const Tensor& dst, const Tensor& src, const char* op) {
  const int64_t n = dst.numel();
  const std::array<Geometry, 2> g = geometries_for<2>({&dst, &src}, dst.shape());
  const Geometry &go = g[0], &gi = g[1];
  dispatch_dtype(dst.dtype(), op, [&](auto d) {
    using D = decltype(d);
    dispatch_dtype(src.dtype(), op, [&](auto s) {
      using S = decltype(s);
      copy_kernel<D, S><<<ilp_grid_blocks(n), kBlockThreads>>>(static_cast<D*>(dst.storage()->data()), go,
                                                static_cast<const S*>(src.storage()->data()), gi, n);
    });
  });
  CVG_CUDA_CHECK_LAUNCH(op);
}

void fill_cuda(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  const Geometry go = geometry_for(dst, dst.shape());
  dispatch_dtype(dst.dtype(), "fill_", [&](auto d) {
    using D = decltype(d);
    fill_kernel<D><<<grid_blocks(n), kBlockThreads>>>(static_cast<D*>(dst.storage()->data()), go,
                                           static_cast<D>(value), n);
  });
  CVG_CUDA_CHECK_LAUNCH("fill_");
}

void add_same_shape_cuda(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t n = out.numel();
  dispatch_floating(out.dtype(), "accumulate_grad", [&](auto d) {
    using T = decltype(d);
    add_kernel<T><<<ilp_grid_blocks(n), kBlockThreads>>>(out.data<T>(), a.data<T>(), b.data<T>(), n);
  });
  CVG_CUDA_CHECK_LAUNCH("accumulate_grad");
}

}  // namespace cvg
