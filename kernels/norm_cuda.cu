// CUDA kernels of the normalisation ops (see kernels/norm.h and kernels/norm_math.h).
//
// One block per group (a batch_norm channel, an instance_norm plane, a layer_norm row; the
// grid strides over groups). Forward: the block sums the group's elements (mean), then the
// squared deviations (two-pass variance, in the input type), then writes y. Backward: the block
// sums dy and dy * (x - mean) (or gy = dy * w[d] for layer_norm) and writes dx with the closed
// form of norm_math.h. The block reduction is a fixed tree (warp shuffles, then one warp over
// the per-warp partials), so results are deterministic and need no atomics.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/cuda_launch.cuh"
#include "kernels/norm.h"

namespace cvg {

namespace {

constexpr int kNormThreads = 256;

// Sums v over the block; every thread gets the total. Must be called by all threads.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T part[32];
  constexpr unsigned kFull = 0xffffffffu;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < warps ? part[lane] : T(0);
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  __syncthreads();  // part is reused by the next call
  return v;
}

// Storage offset of the j-th element (j < count) of group g.
__device__ __forceinline__ int64_t group_elem(const NormGeom& geom, int64_t g, int64_t j) {
  return geom.row_offset(g, j / geom.D) + j % geom.D;
}

template <typename T>
__global__ void norm_forward_kernel(NormGeom geom, const T* __restrict__ x, const T* w,
                                    const T* b, T eps, bool compute_stats, T* mean, T* invstd,
                                    T* var, T* __restrict__ y) {
  const int64_t n = geom.count();
  for (int64_t g = blockIdx.x; g < geom.groups(); g += gridDim.x) {
    T m, is;
    if (compute_stats) {
      T s = 0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += x[group_elem(geom, g, j)];
      m = block_sum(s) / static_cast<T>(n);
      T sq = 0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const T d = x[group_elem(geom, g, j)] - m;
        sq += d * d;
      }
      const T v = block_sum(sq) / static_cast<T>(n);
      is = norm_invstd(v, eps);
      if (threadIdx.x == 0) {
        mean[g] = m;
        invstd[g] = is;
        if (var) var[g] = v;
      }
    } else {
      m = mean[g];
      is = invstd[g];
    }
    const int64_t c = geom.channel(g);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const int64_t off = group_elem(geom, g, j);
      const int64_t k = geom.weight_on_d ? j % geom.D : c;
      const NormCoef<T> f = norm_forward_coef(m, is, w ? w[k] : T(1), b ? b[k] : T(0));
      y[off] = f.a * x[off] + f.shift;
    }
  }
}

template <typename T>
__global__ void norm_backward_kernel(NormGeom geom, const T* __restrict__ dy,
                                     const T* __restrict__ x, const T* mean, const T* invstd,
                                     const T* w, T* dx, T* sum_dy, T* sum_dy_xhat) {
  const int64_t n = geom.count();
  for (int64_t g = blockIdx.x; g < geom.groups(); g += gridDim.x) {
    const T m = mean[g], is = invstd[g];
    // With a per-channel weight the sums are of dy and the weight is applied afterwards (so
    // sum_dy / sum_dy_xhat stay weight-free for dw, db); with a per-d weight, of gy = dy * w.
    const bool wd = geom.weight_on_d && w;
    T s1 = 0, s2 = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const int64_t off = group_elem(geom, g, j);
      const T gy = wd ? dy[off] * w[j % geom.D] : dy[off];
      s1 += gy;
      s2 += gy * (x[off] - m);
    }
    s1 = block_sum(s1);
    s2 = block_sum(s2) * is;  // sum of gy * xhat
    if (threadIdx.x == 0 && !geom.weight_on_d) {
      if (sum_dy) sum_dy[g] = s1;
      if (sum_dy_xhat) sum_dy_xhat[g] = s2;
    }
    if (!dx) continue;
    const T wc = (!geom.weight_on_d && w) ? w[geom.channel(g)] : T(1);
    const NormBackwardCoef<T> k =
        norm_backward_coef(m, is, wc * s1 / static_cast<T>(n), wc * s2 / static_cast<T>(n));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const int64_t off = group_elem(geom, g, j);
      const T gy = wd ? dy[off] * w[j % geom.D] : dy[off] * wc;
      dx[off] = k.ka * gy + k.kb * x[off] + k.kc;
    }
  }
}

// layer_norm's weight / bias gradients: one thread per column d, walking the rows in order
// (neighbouring threads read neighbouring columns, so each row step is coalesced).
template <typename T>
__global__ void norm_affine_grad_kernel(int64_t A, int64_t D, const T* __restrict__ dy,
                                        const T* __restrict__ x, const T* mean, const T* invstd,
                                        T* dw, T* db) {
  CVG_GRID_STRIDE(d, D) {
    T sw = 0, sb = 0;
    for (int64_t a = 0; a < A; ++a) {
      const T g = dy[a * D + d];
      sw += g * ((x[a * D + d] - mean[a]) * invstd[a]);
      sb += g;
    }
    if (dw) dw[d] = sw;
    if (db) db[d] = sb;
  }
}

template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

int norm_grid(const NormGeom& geom) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(geom.groups(), 65535)));
}

}  // namespace

void norm_forward_cuda(const Tensor& x, const NormGeom& geom, const Tensor& weight,
                       const Tensor& bias, double eps, bool compute_stats, const Tensor& mean,
                       const Tensor& invstd, const Tensor& var, const Tensor& y) {
  if (geom.groups() == 0) return;
  dispatch_floating(x.dtype(), "norm_forward_cuda", [&](auto tag) {
    using T = decltype(tag);
    norm_forward_kernel<T><<<norm_grid(geom), kNormThreads>>>(
        geom, x.data<T>(), ptr_or_null<T>(weight), ptr_or_null<T>(bias), static_cast<T>(eps),
        compute_stats, mean.data<T>(), invstd.data<T>(), ptr_or_null<T>(var), y.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("norm forward (batch_norm / instance_norm / layer_norm)");
}

void norm_backward_cuda(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                        const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                        const Tensor& dx, const Tensor& sum_dy, const Tensor& sum_dy_xhat) {
  if (geom.groups() == 0) return;
  dispatch_floating(x.dtype(), "norm_backward_cuda", [&](auto tag) {
    using T = decltype(tag);
    norm_backward_kernel<T><<<norm_grid(geom), kNormThreads>>>(
        geom, dy.data<T>(), x.data<T>(), mean.data<T>(), invstd.data<T>(),
        ptr_or_null<T>(weight), ptr_or_null<T>(dx), ptr_or_null<T>(sum_dy),
        ptr_or_null<T>(sum_dy_xhat));
  });
  CVG_CUDA_CHECK_LAUNCH("norm backward (batch_norm / instance_norm / layer_norm)");
}

void norm_affine_grad_cuda(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                           const Tensor& mean, const Tensor& invstd, const Tensor& dw,
                           const Tensor& db) {
  if (geom.D == 0) return;
  dispatch_floating(x.dtype(), "norm_affine_grad_cuda", [&](auto tag) {
    using T = decltype(tag);
    norm_affine_grad_kernel<T><<<grid_blocks(geom.D), kBlockThreads>>>(
        geom.A, geom.D, dy.data<T>(), x.data<T>(), mean.data<T>(), invstd.data<T>(),
        ptr_or_null<T>(dw), ptr_or_null<T>(db));
  });
  CVG_CUDA_CHECK_LAUNCH("layer_norm backward (weight / bias)");
}

}  // namespace cvg
