// Fused optimizer updates on CUDA: one kernel per parameter tensor, one thread per element
// (grid-stride), reading the gradient and updating parameter and state in a single pass. The
// math is nn/optim_math.h, the same code the CPU loop in nn/optim.cpp runs.
#include <cuda_runtime.h>

#include "nn/optim.h"

namespace cvg::nn {

namespace {

template <typename T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, SgdHyper h) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    sgd_update<T>(p, g, buf, i, h);
}

template <typename T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, int64_t n, AdamHyper h) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    adam_update<T>(p, g, m, v, i, h);
}

template <typename T>
__global__ void rmsprop_kernel(T* p, const T* g, T* sq, T* buf, int64_t n, RmspropHyper h) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    rmsprop_update<T>(p, g, sq, buf, i, h);
}

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + 255) / 256, 4096)); }

void check_launch(const char* op) {
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace

void sgd_step_cuda(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdHyper& h) {
  if (p.numel() == 0) return;
  dispatch_floating(p.dtype(), "SGD", [&](auto tag) {
    using T = decltype(tag);
    sgd_kernel<T><<<blocks_for(p.numel()), 256>>>(p.data<T>(), g.data<T>(), buf.data<T>(),
                                                  p.numel(), h);
  });
  check_launch("SGD");
}

void adam_step_cuda(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                    const AdamHyper& h) {
  if (p.numel() == 0) return;
  dispatch_floating(p.dtype(), "Adam", [&](auto tag) {
    using T = decltype(tag);
    adam_kernel<T><<<blocks_for(p.numel()), 256>>>(p.data<T>(), g.data<T>(), m.data<T>(),
                                                   v.data<T>(), p.numel(), h);
  });
  check_launch("Adam");
}

void rmsprop_step_cuda(const Tensor& p, const Tensor& g, const Tensor& sq, const Tensor& buf,
                       const RmspropHyper& h) {
  if (p.numel() == 0) return;
  dispatch_floating(p.dtype(), "RMSprop", [&](auto tag) {
    using T = decltype(tag);
    rmsprop_kernel<T><<<blocks_for(p.numel()), 256>>>(p.data<T>(), g.data<T>(), sq.data<T>(),
                                                      buf.data<T>(), p.numel(), h);
  });
  check_launch("RMSprop");
}

}  // namespace cvg::nn
