#pragma once
// dropout(x, p, training): inverted dropout, as torch.nn.functional.dropout.
//   y_i = x_i / (1 - p) where element i is kept, 0 where it is dropped (exactly 0, even when
//   x_i is NaN or infinite).
//   Element i (row-major index in x's shape) is kept iff u_i >= p, with u_i the float32 uniform
//   philox_uniform<float>(seed, offset + i) of core/rng.h; (seed, offset) come from the global
//   generator, whose offset then advances by numel like any other random op. The mask is a
//   pure function of (seed, offset, i): the CPU loop and the CUDA kernel draw the same mask,
//   and the same one for float32 and float64 inputs.
//   training = false or p = 0: returns x itself (identity, no copy, no random numbers drawn).
//   p must be in [0, 1); floating dtypes only.
// No mask tensor is stored: the backward regenerates the mask from (seed, offset). Applying a
// fixed mask is linear, so the backward is the same masked scaling of the gradient (the
// internal op dropout_apply), which is its own backward: second derivatives work.
// CPU: dropout_cpu.cpp. CUDA: dropout_cuda.cu.
#include <cstdint>

#include "core/hd.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace cvg {

Tensor dropout(const Tensor& x, double p, bool training = true);

// Whether element `index` of the stream (seed, offset + index) survives dropout with rate p.
CVG_HD bool dropout_keep(uint64_t seed, uint64_t offset, uint64_t index, double p) {
  return static_cast<double>(philox_uniform<float>(seed, offset + index)) >= p;
}

// Raw kernels (no autograd, no checks): out[i] = keep(i) ? x[i] * scale : 0 for the contiguous
// x and out (same shape and dtype).
void dropout_cpu(const Tensor& x, const Tensor& out, uint64_t seed, uint64_t offset, double p,
                 double scale);
#ifdef CVG_WITH_CUDA
void dropout_cuda(const Tensor& x, const Tensor& out, uint64_t seed, uint64_t offset, double p,
                  double scale);
#endif

}  // namespace cvg
