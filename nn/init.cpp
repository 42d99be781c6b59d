#include "nn/init.h"

#include <cmath>

#include "core/autograd.h"
#include "kernels/unary.h"

namespace cvg::nn::init {

namespace {
void assign(Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  t.copy_(values);
}
}  // namespace

std::pair<int64_t, int64_t> fan_in_and_out(const Tensor& t) {
  CVG_CHECK(t.dim() >= 2, "init: fan in/out needs a tensor with >= 2 dims, got shape ", t.shape());
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.shape()[d];
  return {t.shape()[1] * receptive, t.shape()[0] * receptive};
}

void normal_(Tensor& t, double mean, double stddev) {
  assign(t, randn(t.shape(), t.options()) * stddev + mean);
}

void uniform_(Tensor& t, double lo, double hi) {
  CVG_CHECK(lo <= hi, "init::uniform_: lo (", lo, ") > hi (", hi, ")");
  assign(t, rand(t.shape(), t.options()) * (hi - lo) + lo);
}

void constant_(Tensor& t, double value) {
  NoGradGuard no_grad;
  t.fill_(value);
}

void xavier_uniform_(Tensor& t, double gain) {
  const auto [fi, fo] = fan_in_and_out(t);
  const double a = gain * std::sqrt(6.0 / static_cast<double>(fi + fo));
  uniform_(t, -a, a);
}

void xavier_normal_(Tensor& t, double gain) {
  const auto [fi, fo] = fan_in_and_out(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fi + fo)));
}

namespace {
double kaiming_std(const Tensor& t, double a, bool use_fan_in) {
  const auto [fi, fo] = fan_in_and_out(t);
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  return gain / std::sqrt(static_cast<double>(use_fan_in ? fi : fo));
}
}  // namespace

void kaiming_uniform_(Tensor& t, double a, bool fan_in) {
  const double bound = std::sqrt(3.0) * kaiming_std(t, a, fan_in);
  uniform_(t, -bound, bound);
}

void kaiming_normal_(Tensor& t, double a, bool fan_in) { normal_(t, 0.0, kaiming_std(t, a, fan_in)); }

}  // namespace cvg::nn::init
