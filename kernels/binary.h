#pragma once
// Binary elementwise ops with NumPy broadcasting: shapes are aligned at the right and a dim of
// size 1 stretches to the other's size; anything else is an Error naming both shapes.
// Arithmetic ops compute in the promoted dtype (float64 > float32 > int64 > int32 > uint8 >
// bool); comparisons return bool tensors and carry no gradient. Gradients of broadcast inputs
// are summed back to the input's shape (sum_to).
// Per-element math: kernels/binary_math.h. CPU loop: binary_cpu.cpp. CUDA: binary_cuda.cu.
#include "core/tensor.h"
#include "kernels/binary_math.h"

namespace cvg {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);      // d/db at a = 0, b >= 0: 0 (the limit)
Tensor maximum(const Tensor& a, const Tensor& b);  // NaN propagates; ties split the gradient
Tensor minimum(const Tensor& a, const Tensor& b);
// relu's gradient: grad where y > 0, else 0, with y relu's input or output (both are > 0 at the
// same elements; both are NaN where x is NaN, which gets 0). Differentiable in grad
// (twice-differentiated relu nets); y gets no gradient.
Tensor relu_backward(const Tensor& grad, const Tensor& y);

Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

// where(cond, a, b): a where cond is true, else b; all three broadcast together. cond is bool
// (or any dtype, nonzero = true). Gradients flow to a and b through the mask.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);

// Raw kernel entry points (no autograd). out has the broadcast shape; a and b are read through
// broadcast strides, so neither is copied.
Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const char* name);
void binary_cpu(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b);
void where_cpu(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
#ifdef CVG_WITH_CUDA
void binary_cuda(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void where_cuda(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
#endif

}  // namespace cvg
