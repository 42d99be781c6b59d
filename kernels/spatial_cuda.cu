// CUDA spatial_softmax / soft_argmax (see kernels/spatial.h). One 256-thread block per (n, k)
// plane (the grid strides over planes): each thread folds a strided slice of the plane into an
// online state (softmax_math.h's SoftmaxState, or ArgmaxState for soft_argmax), the 32 lanes of
// a warp merge by a butterfly of shuffles, and one warp merges the 8 per-warp states from shared
// memory. Merge orders are fixed, so results are deterministic. A last pass over the plane
// writes the probabilities (spatial_softmax) or the gradient (soft_argmax backward).
#include <cuda_runtime.h>

#include <algorithm>

#include "core/cuda_launch.cuh"
#include "kernels/softmax_cuda.cuh"
#include "kernels/spatial.h"
#include "kernels/spatial_cuda.cuh"

namespace cvg {

namespace {

constexpr int kPlaneThreads = 256;

template <typename T>
__global__ void spatial_softmax_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                       int64_t hw, T inv_t) {
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const T* xp = x + p * hw;
    T* yp = y + p * hw;
    const SoftmaxState<T> st = softmax_block_state(xp, hw, inv_t);
    for (int64_t j = threadIdx.x; j < hw; j += blockDim.x) yp[j] = softmax_out(xp[j] * inv_t, st);
  }
}

template <typename T>
__global__ void soft_argmax_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t planes,
                                   int64_t H, int64_t W, bool normalized, T inv_t) {
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const T* xp = x + p * H * W;
    ArgmaxState<T> st = argmax_state_init<T>();
    for (int64_t j = threadIdx.x; j < H * W; j += blockDim.x) {
      const int64_t i = j / W, c = j % W;
      argmax_state_add(st, xp[j] * inv_t, spatial_coord<T>(c, W, normalized),
                       spatial_coord<T>(i, H, normalized));
    }
    st = argmax_block_merge(st);
    if (threadIdx.x == 0) {
      out[2 * p] = st.sx / st.s;
      out[2 * p + 1] = st.sy / st.s;
    }
  }
}

template <typename T>
__global__ void soft_argmax_backward_kernel(const T* __restrict__ x, const T* __restrict__ out,
                                            const T* __restrict__ g, T* __restrict__ dx,
                                            int64_t planes, int64_t H, int64_t W, bool normalized,
                                            T inv_t) {
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const T* xp = x + p * H * W;
    T* dp = dx + p * H * W;
    const SoftmaxState<T> st = softmax_block_state(xp, H * W, inv_t);
    const T ox = out[2 * p], oy = out[2 * p + 1], gx = g[2 * p] * inv_t, gy = g[2 * p + 1] * inv_t;
    for (int64_t j = threadIdx.x; j < H * W; j += blockDim.x) {
      const int64_t i = j / W, c = j % W;
      const T prob = softmax_out(xp[j] * inv_t, st);
      dp[j] = prob * ((spatial_coord<T>(c, W, normalized) - ox) * gx +
                      (spatial_coord<T>(i, H, normalized) - oy) * gy);
    }
  }
}

int plane_grid(int64_t planes) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(planes, 65535)));
}

}  // namespace

void spatial_softmax_cuda(const Tensor& x, const Tensor& out, int64_t planes, int64_t H,
                          int64_t W, double temperature) {
  dispatch_floating(x.dtype(), "spatial_softmax", [&](auto tag) {
    using T = decltype(tag);
    spatial_softmax_kernel<T><<<plane_grid(planes), kPlaneThreads>>>(
        x.data<T>(), out.data<T>(), planes, H * W, static_cast<T>(1.0 / temperature));
  });
  CVG_CUDA_CHECK_LAUNCH("spatial_softmax");
}

void soft_argmax_cuda(const Tensor& x, const Tensor& out, int64_t planes, int64_t H, int64_t W,
                      bool normalized, double temperature) {
  dispatch_floating(x.dtype(), "soft_argmax", [&](auto tag) {
    using T = decltype(tag);
    soft_argmax_kernel<T><<<plane_grid(planes), kPlaneThreads>>>(
        x.data<T>(), out.data<T>(), planes, H, W, normalized, static_cast<T>(1.0 / temperature));
  });
  CVG_CUDA_CHECK_LAUNCH("soft_argmax");
}

void soft_argmax_backward_cuda(const Tensor& x, const Tensor& out, const Tensor& g,
                               const Tensor& dx, int64_t planes, int64_t H, int64_t W,
                               bool normalized, double temperature) {
  dispatch_floating(x.dtype(), "soft_argmax backward", [&](auto tag) {
    using T = decltype(tag);
    soft_argmax_backward_kernel<T><<<plane_grid(planes), kPlaneThreads>>>(
        x.data<T>(), out.data<T>(), g.data<T>(), dx.data<T>(), planes, H, W, normalized,
        static_cast<T>(1.0 / temperature));
  });
  CVG_CUDA_CHECK_LAUNCH("soft_argmax backward");
}

}  // namespace cvg
