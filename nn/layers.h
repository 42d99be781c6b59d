#pragma once
// Basic layers: Linear, Dropout and the activation modules. Convolution, normalisation and
// pooling layers live in nn/conv_layers.h, nn/norm_layers.h and nn/pool_layers.h.
// Linear follows PyTorch: weight [out, in] and bias [out] drawn from U(-1/sqrt(in), 1/sqrt(in)),
// y = x W^T + b over the last dim of x.
#include <memory>

#include "nn/module.h"

namespace cvg::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Tensor weight, bias;

 private:
  int64_t in_, out_;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "ReLU"; }
};
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double slope = 0.01) : slope_(slope) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
 private:
  double slope_;
};
class ELU : public Module {
 public:
  explicit ELU(double alpha = 1.0) : alpha_(alpha) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
 private:
  double alpha_;
};
class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Sigmoid"; }
};
class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Tanh"; }
};
class Softplus : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Softplus"; }
};
// Flattens all dims after the first (batch) dim.
// Inverted dropout (kernels/dropout.h): zeroes each element with probability p and scales the
// rest by 1 / (1 - p) in train mode; the identity in eval mode.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

 private:
  double p_;
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Flatten"; }
};

}  // namespace cvg::nn
