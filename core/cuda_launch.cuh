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

}  // namespace cvg

#define CVG_GRID_STRIDE(i, n)                                                          \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
