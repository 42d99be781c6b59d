#pragma once
// Launch geometry shared by the elementwise-style CUDA kernels: 256-thread blocks and a grid
// capped at 65535 * 8 blocks, with kernels written as grid-stride loops (CVG_GRID_STRIDE) so that
// any n is covered whatever the cap. Launch errors go through CVG_CUDA_CHECK_LAUNCH
// (core/cuda_check.h), which names the op, file and line.
#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"

namespace cvg {

constexpr int kBlockThreads = 256;

// At least one block: a launch with an empty grid is an error (cudaErrorInvalidValue /
// invalid configuration), while one block over n = 0 elements does nothing, so empty tensors
// need no special case at every launch site.
inline int grid_blocks(int64_t n) {
  return static_cast<int>(std::clamp<int64_t>((n + kBlockThreads - 1) / kBlockThreads, 1,
                                              int64_t{65535} * 8));
}

// Memory-level parallelism. A thread that loads an element, computes and stores it before its
// next load keeps one load in flight; even a full H100 (2048 threads per SM) then has about
// 1 MB in flight, half of what its HBM needs to stream at full speed (bandwidth x latency), so
// such kernels measured 55-68 % of copy bandwidth (relu, exp, dm_power in bench/results). The
// store cannot move above the next load: the compiler must assume they may alias. ilp_loop
// gives each thread kIlp elements per round, one grid apart (so each load instruction of a
// warp stays coalesced), and issues all of a round's loads before its first store.
constexpr int kIlp = 4;

// Blocks for an ilp_loop over n elements.
inline int ilp_grid_blocks(int64_t n) { return grid_blocks((n + kIlp - 1) / kIlp); }

#if defined(__CUDACC__)
// load(i) reads what element i needs and returns it; store(i, v) computes element i from v and
// writes it. Covers [0, n) for any grid size (rounds of kIlp grid strides).
template <typename Load, typename Store>
__device__ __forceinline__ void ilp_loop(int64_t n, const Load& load, const Store& store) {
  using V = decltype(load(int64_t{0}));
  const int64_t grid = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t base = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; base < n;
       base += kIlp * grid) {
    V v[kIlp];
#pragma unroll
    for (int u = 0; u < kIlp; ++u)
      if (base + u * grid < n) v[u] = load(base + u * grid);
#pragma unroll
    for (int u = 0; u < kIlp; ++u)
      if (base + u * grid < n) store(base + u * grid, v[u]);
  }
}
#endif

}  // namespace cvg

#define CVG_GRID_STRIDE(i, n)                                                          \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
