#include "nn/conv_layers.h"

#include <cmath>

#include "kernels/conv.h"
#include "nn/init.h"

namespace cvg::nn {

namespace {

void check_options(const char* layer, int64_t in, int64_t out, Size2 kernel, const Conv2dOptions& o) {
  CVG_CHECK(in > 0 && out > 0, layer, ": channels must be positive, got in=", in, " out=", out);
  CVG_CHECK(kernel[0] > 0 && kernel[1] > 0, layer, ": kernel must be positive, got ", kernel[0], "x",
            kernel[1]);
  CVG_CHECK(o.groups > 0 && in % o.groups == 0 && out % o.groups == 0, layer, ": groups (", o.groups,
            ") must divide in_channels (", in, ") and out_channels (", out, ")");
}

// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, fan_in = weight.size(1) * kH * kW.
void init_uniform(Tensor& weight, Tensor& bias) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in_and_out(weight).first));
  init::uniform_(weight, -bound, bound);
  if (bias.defined()) init::uniform_(bias, -bound, bound);
}

std::string describe_conv(const char* name, int64_t in, int64_t out, Size2 k, const Conv2dOptions& o,
                          bool has_bias, bool transposed) {
  std::string s = str_cat(name, "(", in, ", ", out, ", kernel=", k[0], "x", k[1]);
  if (o.stride != Size2{1, 1}) s += str_cat(", stride=", o.stride[0], "x", o.stride[1]);
  if (o.padding != Size2{0, 0}) s += str_cat(", padding=", o.padding[0], "x", o.padding[1]);
  if (transposed && o.output_padding != Size2{0, 0})
    s += str_cat(", output_padding=", o.output_padding[0], "x", o.output_padding[1]);
  if (o.dilation != Size2{1, 1}) s += str_cat(", dilation=", o.dilation[0], "x", o.dilation[1]);
  if (o.groups != 1) s += str_cat(", groups=", o.groups);
  return s + str_cat(", bias=", has_bias ? "true" : "false", ")");
}

}  // namespace

int64_t same_padding(int64_t kernel, int64_t dilation) {
  CVG_CHECK(kernel > 0 && kernel % 2 == 1 && dilation > 0,
            "same_padding: needs an odd kernel and a positive dilation, got kernel=", kernel,
            " dilation=", dilation);
  return dilation * (kernel - 1) / 2;
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel, Conv2dOptions options)
    : in_(in_channels), out_(out_channels), kernel_(kernel), opt_(options) {
  check_options("Conv2d", in_, out_, kernel_, opt_);
  weight = Tensor::empty({out_, in_ / opt_.groups, kernel_[0], kernel_[1]});
  register_parameter("weight", &weight);
  if (opt_.bias) {
    bias = Tensor::empty({out_});
    register_parameter("bias", &bias);
  }
  init_uniform(weight, bias);
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, opt_.stride, opt_.padding, opt_.dilation, opt_.groups);
}

std::string Conv2d::describe() const {
  return describe_conv("Conv2d", in_, out_, kernel_, opt_, bias.defined(), false);
}

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel,
                                 Conv2dOptions options)
    : in_(in_channels), out_(out_channels), kernel_(kernel), opt_(options) {
  check_options("ConvTranspose2d", in_, out_, kernel_, opt_);
  weight = Tensor::empty({in_, out_ / opt_.groups, kernel_[0], kernel_[1]});
  register_parameter("weight", &weight);
  if (opt_.bias) {
    bias = Tensor::empty({out_});
    register_parameter("bias", &bias);
  }
  init_uniform(weight, bias);
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, opt_.stride, opt_.padding, opt_.output_padding,
                          opt_.groups, opt_.dilation);
}

std::string ConvTranspose2d::describe() const {
  return describe_conv("ConvTranspose2d", in_, out_, kernel_, opt_, bias.defined(), true);
}

}  // namespace cvg::nn
