#pragma once
// Device helpers that combine soft-argmax states (kernels/spatial.h's ArgmaxState: max, sum of
// exp, exp-weighted position sums) across the threads of a warp or a block; used by
// spatial_cuda.cu (soft_argmax) and landmark_loss_cuda.cu (the equivariance loss's moments).
// Merge orders are fixed and every thread returns lane 0's bits, so results are deterministic
// and all threads agree exactly (as softmax_cuda.cuh does for SoftmaxState).
#include "kernels/spatial.h"

namespace cvg {

// Butterfly over the 32 lanes, then lane 0's state to every lane.
template <typename T>
__device__ ArgmaxState<T> argmax_warp_merge(ArgmaxState<T> st) {
  constexpr unsigned kFull = 0xffffffffu;
  for (int off = 16; off > 0; off >>= 1) {
    const ArgmaxState<T> o{__shfl_xor_sync(kFull, st.m, off), __shfl_xor_sync(kFull, st.s, off),
                           __shfl_xor_sync(kFull, st.sx, off), __shfl_xor_sync(kFull, st.sy, off)};
    argmax_state_merge(st, o);
  }
  return {__shfl_sync(kFull, st.m, 0), __shfl_sync(kFull, st.s, 0), __shfl_sync(kFull, st.sx, 0),
          __shfl_sync(kFull, st.sy, 0)};
}

// The block's merged state (blockDim.x a multiple of 32, at most 1024), returned to every thread:
// warps merge by shuffles, then every warp merges the per-warp states from shared memory. Must
// be called by all threads of the block; it can be called again right away (the trailing
// barrier protects the shared partials).
template <typename T>
__device__ ArgmaxState<T> argmax_block_merge(ArgmaxState<T> st) {
  __shared__ ArgmaxState<T> part[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  st = argmax_warp_merge(st);
  if (lane == 0) part[warp] = st;
  __syncthreads();
  st = argmax_warp_merge(lane < warps ? part[lane] : argmax_state_init<T>());
  __syncthreads();
  return st;
}

}  // namespace cvg
