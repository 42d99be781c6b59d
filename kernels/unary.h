#pragma once
// Unary elementwise ops (one input, same shape out) and ops with a scalar operand.
// Names follow PyTorch. Each is differentiable; its backward is written with these same ops,
// so second derivatives work. Integer inputs are accepted by the ops that make sense for them
// (neg, abs, sign, relu, clamp, the *_scalar ops) and produce no gradient.
//
// Integer tensors and scalars. The result of an op on an integer tensor keeps the tensor's dtype
// (int32, int64, uint8). The scalar (add, sub, mul, rsub, the operators +, -, * with a double)
// and clamp's lo and hi must therefore be exactly representable in that dtype: an integer value
// in its range. Anything else (int64 * 0.5, clamp(int, -1.5, 3.5), int32 * 1e10, uint8 * -1.0,
// a NaN) is a cvg::Error naming the op, the dtype and the value. PyTorch would promote a
// fractional scalar to float; here convert first (x.to(DType::float32) * 0.5), so that a
// truncation is never silent. div of an integer tensor is refused whatever the scalar. A double
// cannot say whether the caller wrote 2 or 2.0, so x * 2.0 is accepted as x * 2. Integer +, -, *
// and neg, abs, square wrap around on overflow (modulo 2^bits), as in PyTorch: uint8 10 - 1.0
// is 9 (the scalar 1 is in range), 250 + 10.0 is 4.
// Per-element math: kernels/unary_math.h. CPU loop: unary_cpu.cpp. CUDA: unary_cuda.cu.
#include "core/tensor.h"
#include "kernels/unary_math.h"

namespace cvg {

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor pow(const Tensor& x, double exponent);
Tensor add(const Tensor& x, double s);
Tensor sub(const Tensor& x, double s);
Tensor mul(const Tensor& x, double s);
Tensor div(const Tensor& x, double s);
Tensor rsub(const Tensor& x, double s);  // s - x

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& x, double s);
Tensor operator+(double s, const Tensor& x);
Tensor operator-(const Tensor& x, double s);
Tensor operator-(double s, const Tensor& x);
Tensor operator*(const Tensor& x, double s);
Tensor operator*(double s, const Tensor& x);
Tensor operator/(const Tensor& x, double s);

// Raw kernel entry point (no autograd): out[i] = unary_eval<op>(x[i], p), computed on x's
// device. The output is a new contiguous tensor of x's shape and dtype.
Tensor unary_forward(UnaryOp op, const Tensor& x, const UnaryParams& p, const char* name);
void unary_cpu(UnaryOp op, const Tensor& x, const Tensor& out, const UnaryParams& p);
#ifdef CVG_WITH_CUDA
void unary_cuda(UnaryOp op, const Tensor& x, const Tensor& out, const UnaryParams& p);
#endif

}  // namespace cvg
