#pragma once
// Parameter initialisers (in place, outside autograd), drawing from the global Philox
// generator so that a seed fixes a model's initial weights on every device.
// fan_in / fan_out follow PyTorch: for a weight of shape [out, in, k1, k2, ...],
// fan_in = in * prod(k), fan_out = out * prod(k).
#include "core/tensor.h"

namespace cvg::nn::init {

void normal_(Tensor& t, double mean = 0.0, double stddev = 1.0);
void uniform_(Tensor& t, double lo = 0.0, double hi = 1.0);
void constant_(Tensor& t, double value);
// Glorot & Bengio: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)); normal: std = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, double gain = 1.0);
void xavier_normal_(Tensor& t, double gain = 1.0);
// He et al.: std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)) for leaky_relu slope a.
void kaiming_uniform_(Tensor& t, double a = 0.0, bool fan_in = true);
void kaiming_normal_(Tensor& t, double a = 0.0, bool fan_in = true);

std::pair<int64_t, int64_t> fan_in_and_out(const Tensor& t);

}  // namespace cvg::nn::init
