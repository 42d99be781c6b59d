#pragma once
// Gradient reversal (Ganin & Lempitsky, ICML 2015; Ganin's thesis, section 5.4.2): the layer
// that sits between a feature extractor and a domain classifier in domain-adversarial training.
//
//   forward   grad_reverse(x, lambda) = x         an alias of x (a view of the same storage,
//                                                 same shape and strides): no copy, no kernel
//   backward  dx = -lambda * g                    the incoming gradient, negated and scaled
//
// So the classifier behind the layer descends its loss while everything in front of it ascends
// the same loss, scaled by lambda (lambda = 0 cuts the gradient; any finite value is accepted).
// The backward is written with the differentiable scalar multiply (kernels/unary.h), so the
// gradient can be differentiated again: a second backward through it scales by -lambda once
// more, as the chain rule for the linear map g -> -lambda g says.
//
// Devices: the forward is a view and the backward a scalar multiply, both of which already run
// on every device, so the op runs wherever x lives and needs no CPU loop or CUDA kernel of its
// own (no grad_reverse_cpu.cpp / grad_reverse_cuda.cu).
#include "core/tensor.h"

namespace cvg {

Tensor grad_reverse(const Tensor& x, double lambda = 1.0);

}  // namespace cvg
