#pragma once
// Device helpers that combine online softmax states (kernels/softmax_math.h) across the
// threads of a warp or a block; used by softmax_cuda.cu and the fused cross-entropy in
// loss_cuda.cu. Merge orders are fixed, so results are deterministic.
#include "kernels/softmax_math.h"

namespace cvg {

// Butterfly over the 32 lanes; every lane returns lane 0's state, so all agree bit for bit.
template <typename T>
__device__ SoftmaxState<T> softmax_warp_merge(SoftmaxState<T> st) {
  constexpr unsigned kFull = 0xffffffffu;
  for (int off = 16; off > 0; off >>= 1) {
    const SoftmaxState<T> o{__shfl_xor_sync(kFull, st.m, off), __shfl_xor_sync(kFull, st.s, off)};
    softmax_merge(st, o);
  }
  return {__shfl_sync(kFull, st.m, 0), __shfl_sync(kFull, st.s, 0)};
}

// State of the row xr[0, D) computed by the whole block (blockDim.x a multiple of 32, at most
// 1024): each thread folds a strided slice, warps merge by shuffles, and every warp then merges
// the per-warp states from shared memory, so every thread returns the row's state without a
// further broadcast. Must be called by all threads of the block. `scale` multiplies every value
// first (spatial_softmax's 1 / temperature).
template <typename T>
__device__ SoftmaxState<T> softmax_block_state(const T* xr, int64_t D, T scale = T(1)) {
  __shared__ T part_m[32], part_s[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warps = blockDim.x / 32;
  SoftmaxState<T> st = softmax_init<T>();
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) softmax_add(st, xr[j] * scale);
  st = softmax_warp_merge(st);
  if (lane == 0) {
    part_m[warp] = st.m;
    part_s[warp] = st.s;
  }
  __syncthreads();
  st = lane < warps ? SoftmaxState<T>{part_m[lane], part_s[lane]} : softmax_init<T>();
  st = softmax_warp_merge(st);
  __syncthreads();  // the partials are rewritten by the next call
  return st;
}

}  // namespace cvg
