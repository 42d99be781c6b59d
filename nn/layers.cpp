#include "nn/layers.h"

#include <cmath>

#include "kernels/dropout.h"
#include "kernels/matmul.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "nn/init.h"

namespace cvg::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias)
    : in_(in_features), out_(out_features) {
  CVG_CHECK(in_features > 0 && out_features > 0, "Linear: sizes must be positive, got in=",
            in_features, " out=", out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight = Tensor::empty({out_features, in_features});
  init::uniform_(weight, -bound, bound);
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = Tensor::empty({out_features});
    init::uniform_(bias, -bound, bound);
    register_parameter("bias", &bias);
  }
}

Tensor Linear::forward(const Tensor& x) {
  CVG_CHECK(x.dim() >= 1 && x.shape().back() == in_,
            "Linear: expected input with last dim ", in_, ", got shape ", x.shape());
  return linear(x, weight, bias);
}

std::string Linear::describe() const {
  return str_cat("Linear(in=", in_, ", out=", out_, ", bias=", bias.defined() ? "true" : "false", ")");
}

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, slope_); }
std::string LeakyReLU::describe() const { return str_cat("LeakyReLU(", slope_, ")"); }
Tensor ELU::forward(const Tensor& x) { return elu(x, alpha_); }
std::string ELU::describe() const { return str_cat("ELU(", alpha_, ")"); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor Softplus::forward(const Tensor& x) { return softplus(x); }
Dropout::Dropout(double p) : p_(p) {
  CVG_CHECK(p >= 0 && p < 1, "Dropout: p must be in [0, 1), got ", p);
}
Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training()); }
std::string Dropout::describe() const { return str_cat("Dropout(p=", p_, ")"); }

Tensor Flatten::forward(const Tensor& x) {
  CVG_CHECK(x.dim() >= 1, "Flatten: expected a batched input, got a 0-d tensor");
  return x.dim() == 1 ? x : flatten(x, 1);
}

}  // namespace cvg::nn
