#pragma once
// a + b for two tensors of identical shape, dtype and device, recorded as the op "add" when
// grad mode is on. The engine sums gradients that reach one node with it, which keeps core/
// independent of kernels/ while staying differentiable for create_graph.
#include "core/tensor.h"

namespace cvg {

Tensor accumulate_grad(const Tensor& a, const Tensor& b);

#ifdef CVG_WITH_CUDA
void add_same_shape_cuda(const Tensor& out, const Tensor& a, const Tensor& b);
#endif

}  // namespace cvg
