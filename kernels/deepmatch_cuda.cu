// CUDA kernels of the Deep Matching layers (conventions in kernels/deepmatch.h). One kernel
// template, instantiated per functor of kernels/deepmatch_math.h: a grid-stride loop with one
// thread per element written, calling the same per-element code as the CPU loops, so the two
// devices compute the same sums in the same order. All backward passes are gathers: one writer
// per element, no atomics, deterministic.
//   corr_forward      one thread per score, a d-long dot product (strided over channels).
//   corr_grad_ref     one thread per reference descriptor element, a K^2 loop.
//   corr_grad_target  one thread per target descriptor element, over the <= ceil(K/stride)^2
//                     references whose window holds it.
//   pool_*, unpool_*  one thread per fine or coarse score, <= 9 or <= 4 candidates.
//   agg_*, disagg_*   one thread per score, 4 corners.
//   power_forward     elementwise exp(nu ln A).
//   hinge_terms       one thread per score; hinge_coef one per score (the active-term counts
//                     per point come from a sum over the terms).
#include <cuda_runtime.h>

#include "core/cuda_launch.cuh"
#include "kernels/deepmatch.h"

namespace cvg {

namespace {

template <typename F>
__global__ void dm_kernel(F f, int64_t n) {
  CVG_GRID_STRIDE(l, n) { f(l); }
}

template <typename F>
void run_cuda(const F& f, int64_t n, const char* op) {
  if (n <= 0) return;
  dm_kernel<F><<<grid_blocks(n), kBlockThreads>>>(f, n);
  CVG_CUDA_CHECK_LAUNCH(op);
}

}  // namespace

#define CVG_DM_DEFINE_CUDA(name, F)                                                          \
  void dm_##name##_cuda(const F<float>& f, int64_t n) { run_cuda(f, n, "dm_" #name); }      \
  void dm_##name##_cuda(const F<double>& f, int64_t n) { run_cuda(f, n, "dm_" #name); }
CVG_DM_KERNELS(CVG_DM_DEFINE_CUDA)
#undef CVG_DM_DEFINE_CUDA

}  // namespace cvg
