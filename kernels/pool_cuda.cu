// CUDA kernels for the pooling ops (conventions in kernels/pool.h). Contiguous NCHW data; every
// kernel is a grid-stride loop with one thread per element it writes, and calls the per-element
// math of kernels/pool_math.h, the same code as the CPU loops in pool_cpu.cpp, so it matches
// them (sums run in the same order).
//   max_pool2d / avg_pool2d          : one thread per output, loops over its window.
//   max_pool2d / avg_pool2d backward : one thread per input (a gather): loops over the outputs
//       whose window can cover it and sums their gradient (max: where the switch names it).
//       One writer per element, no atomics, deterministic.
//   max_unpool2d, two passes so that overlapping windows resolve the same way as the CPU's
//   sequential scatter (the last writer in row-major input order wins):
//       winners : one thread per input k, atomicMax(winners[switch[k]], k) into a buffer
//                 preset to -1; the maximum does not depend on the order the atomics land in.
//                 An out-of-range switch is skipped and its position recorded with atomicMin,
//                 so the host can report the first one.
//       forward : one thread per output position, reads x at its winner (or writes 0).
//       backward: one thread per input, reads grad_out at its switch if it won it (or 0).
#include <cuda_runtime.h>

#include "core/cuda_launch.cuh"

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "core/fast_div.h"
#include "kernels/pool.h"

namespace cvg {

namespace {

// Flat index l of a [planes, H, W] tensor as (plane, index in the plane, y, x), by dividers the
// host makes once per launch (core/fast_div.h): two 64-bit divisions per element cost these
// memory-bound kernels more than their loads.
struct PlaneSplit {
  FastDiv fplane, fw;
  PlaneSplit(int64_t plane, int64_t w) : fplane(FastDiv::for_size(plane)), fw(FastDiv::for_size(w)) {}
  struct At {
    int64_t plane, i, y, x;
  };
  __device__ __forceinline__ At operator()(int64_t l) const {
    const int64_t plane = fplane.div(l), i = l - plane * fplane.divisor(), y = fw.div(i);
    return {plane, i, y, i - y * fw.divisor()};
  }
};

#define CVG_POOL_LOOP(l, n)                                                              \
  for (int64_t l = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; l < (n); \
       l += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void max_pool_kernel(const T* x, PoolGeometry g, PlaneSplit split, T* values,
                                int32_t* switches) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  CVG_POOL_LOOP(l, g.planes * op) {
    const PlaneSplit::At at = split(l);
    max_pool_at(x + at.plane * ip, g, at.y, at.x, values + l, switches + l);
  }
}

template <typename T>
__global__ void max_pool_backward_kernel(const T* grad_out, const int32_t* switches,
                                         PoolGeometry g, PlaneSplit split, T* grad_in) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  CVG_POOL_LOOP(l, g.planes * ip) {
    const PlaneSplit::At at = split(l);
    grad_in[l] = max_pool_grad_at(grad_out + at.plane * op, switches + at.plane * op, g, at.y,
                                  at.x);
  }
}

template <typename T>
__global__ void avg_pool_kernel(const T* x, PoolGeometry g, PlaneSplit split, T* out) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  CVG_POOL_LOOP(l, g.planes * op) {
    const PlaneSplit::At at = split(l);
    out[l] = avg_pool_at(x + at.plane * ip, g, at.y, at.x);
  }
}

template <typename T>
__global__ void avg_pool_backward_kernel(const T* grad_out, PoolGeometry g, PlaneSplit split,
                                         T* grad_in) {
  const int64_t op = g.out_plane();
  CVG_POOL_LOOP(l, g.planes * g.in_plane()) {
    const PlaneSplit::At at = split(l);
    grad_in[l] = avg_pool_grad_at(grad_out + at.plane * op, g, at.y, at.x);
  }
}

__global__ void unpool_winners_kernel(const int32_t* switches, UnpoolGeometry g,
                                      int32_t* winners, unsigned long long* first_bad) {
  CVG_POOL_LOOP(l, g.planes * g.in_plane) {
    const int64_t plane = l / g.in_plane, k = l % g.in_plane;
    const int64_t p = switches[l];
    if (p < 0 || p >= g.out_plane)
      atomicMin(first_bad, static_cast<unsigned long long>(l));
    else
      atomicMax(winners + plane * g.out_plane + p, static_cast<int32_t>(k));
  }
}

template <typename T>
__global__ void unpool_kernel(const T* x, const int32_t* winners, UnpoolGeometry g, T* out) {
  CVG_POOL_LOOP(l, g.planes * g.out_plane) {
    const int64_t plane = l / g.out_plane;
    out[l] = unpool_value_at(x + plane * g.in_plane, winners + plane * g.out_plane,
                             l % g.out_plane);
  }
}

template <typename T>
__global__ void unpool_backward_kernel(const T* grad_out, const int32_t* switches,
                                       const int32_t* winners, UnpoolGeometry g, T* grad_in) {
  CVG_POOL_LOOP(l, g.planes * g.in_plane) {
    const int64_t plane = l / g.in_plane;
    grad_in[l] = unpool_grad_at(grad_out + plane * g.out_plane, switches + plane * g.in_plane,
                                winners + plane * g.out_plane, l % g.in_plane);
  }
}

#undef CVG_POOL_LOOP

}  // namespace

void max_pool2d_cuda(const Tensor& x, const PoolGeometry& g, const Tensor& values,
                     const Tensor& switches) {
  dispatch_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    max_pool_kernel<T><<<grid_blocks(values.numel()), kBlockThreads>>>(
        x.data<T>(), g, PlaneSplit(g.out_plane(), g.w.out), values.data<T>(),
        switches.data<int32_t>());
  });
  CVG_CUDA_CHECK_LAUNCH("max_pool2d");
}

void max_pool2d_backward_cuda(const Tensor& grad_out, const Tensor& switches,
                              const PoolGeometry& g, const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    max_pool_backward_kernel<T><<<grid_blocks(grad_in.numel()), kBlockThreads>>>(
        grad_out.data<T>(), switches.data<int32_t>(), g, PlaneSplit(g.in_plane(), g.w.in),
        grad_in.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("max_pool2d_backward");
}

void avg_pool2d_cuda(const Tensor& x, const PoolGeometry& g, const Tensor& out) {
  dispatch_floating(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    avg_pool_kernel<T><<<grid_blocks(out.numel()), kBlockThreads>>>(
        x.data<T>(), g, PlaneSplit(g.out_plane(), g.w.out), out.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("avg_pool2d");
}

void avg_pool2d_backward_cuda(const Tensor& grad_out, const PoolGeometry& g,
                              const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    avg_pool_backward_kernel<T><<<grid_blocks(grad_in.numel()), kBlockThreads>>>(
        grad_out.data<T>(), g, PlaneSplit(g.in_plane(), g.w.in), grad_in.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("avg_pool2d_backward");
}

int64_t max_unpool2d_winners_cuda(const Tensor& switches, const UnpoolGeometry& g,
                                  const Tensor& winners) {
  const char* op = "max_unpool2d";
  // -1 everywhere (all bits set); the bad-position flag starts at the largest value.
  CVG_CUDA_CHECK(cudaMemsetAsync(winners.raw_data(), 0xFF, winners.numel() * sizeof(int32_t)),
                 op);
  const Tensor flag = Tensor::empty({1}, switches.options().with_dtype(DType::int64));
  auto* first_bad = static_cast<unsigned long long*>(flag.raw_data());
  CVG_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, sizeof(unsigned long long)), op);
  if (switches.numel() > 0) {
    unpool_winners_kernel<<<grid_blocks(switches.numel()), kBlockThreads>>>(
        switches.data<int32_t>(), g, winners.data<int32_t>(), first_bad);
    CVG_CUDA_CHECK_LAUNCH(op);
  }
  unsigned long long host = 0;
  CVG_CUDA_CHECK(cudaMemcpy(&host, first_bad, sizeof(host), cudaMemcpyDeviceToHost), op);
  return host == ~0ULL ? -1 : static_cast<int64_t>(host);
}

void max_unpool2d_cuda(const Tensor& x, const Tensor& winners, const UnpoolGeometry& g,
                       const Tensor& out) {
  dispatch_floating(x.dtype(), "max_unpool2d", [&](auto tag) {
    using T = decltype(tag);
    unpool_kernel<T><<<grid_blocks(out.numel()), kBlockThreads>>>(x.data<T>(), winners.data<int32_t>(),
                                                            g, out.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("max_unpool2d");
}

void max_unpool2d_backward_cuda(const Tensor& grad_out, const Tensor& switches,
                                const Tensor& winners, const UnpoolGeometry& g,
                                const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "max_unpool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    unpool_backward_kernel<T><<<grid_blocks(grad_in.numel()), kBlockThreads>>>(
        grad_out.data<T>(), switches.data<int32_t>(), winners.data<int32_t>(), g,
        grad_in.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("max_unpool2d_backward");
}

}  // namespace cvg
