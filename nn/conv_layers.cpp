#include "nn/conv_layers.h"

#include <cmath>

#include "kernels/conv.h"
#include "nn/init.h"

namespace cvg::nn {

int64_t same_padding(int64_t kernel, int64_t dilation) {
  CVG_CHECK(kernel > 0 && kernel % 2 == 1 && dilation > 0,
            "same_padding: needs an odd kernel and a positive dilation, got kernel=", kernel,
            " dilation=", dilation);
  return dilation * (kernel - 1) / 2;
}

ConvLayerBase::ConvLayerBase(const char* name, int64_t in, int64_t out, Size2 kernel,
                             Conv2dOptions o, const Shape& weight_shape)
    : in_(in), out_(out), kernel_(kernel), opt_(o) {
  CVG_CHECK(in > 0 && out > 0, name, ": channels must be positive, got in=", in, " out=", out);
  CVG_CHECK(kernel[0] > 0 && kernel[1] > 0, name, ": kernel must be positive, got ", kernel[0], "x",
            kernel[1]);
  CVG_CHECK(o.groups > 0 && in % o.groups == 0 && out % o.groups == 0, name, ": groups (", o.groups,
            ") must divide in_channels (", in, ") and out_channels (", out, ")");
  weight = Tensor::empty(weight_shape);
  register_parameter("weight", &weight);
  if (o.bias) {
    bias = Tensor::empty({out});
    register_parameter("bias", &bias);
  }
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, fan_in = weight.size(1) * kH * kW.
  const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in_and_out(weight).first));
  init::uniform_(weight, -bound, bound);
  if (bias.defined()) init::uniform_(bias, -bound, bound);
}

std::string ConvLayerBase::describe_as(const char* name, bool transposed) const {
  const Conv2dOptions& o = opt_;
  std::string s = str_cat(name, "(", in_, ", ", out_, ", kernel=", kernel_[0], "x", kernel_[1]);
  if (o.stride != Size2{1, 1}) s += str_cat(", stride=", o.stride[0], "x", o.stride[1]);
  if (o.padding != Size2{0, 0}) s += str_cat(", padding=", o.padding[0], "x", o.padding[1]);
  if (transposed && o.output_padding != Size2{0, 0})
    s += str_cat(", output_padding=", o.output_padding[0], "x", o.output_padding[1]);
  if (o.dilation != Size2{1, 1}) s += str_cat(", dilation=", o.dilation[0], "x", o.dilation[1]);
  if (o.groups != 1) s += str_cat(", groups=", o.groups);
  return s + str_cat(", bias=", bias.defined() ? "true" : "false", ")");
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel, Conv2dOptions options)
    : ConvLayerBase("Conv2d", in_channels, out_channels, kernel, options,
                    {out_channels, in_channels / std::max<int64_t>(options.groups, 1), kernel[0],
                     kernel[1]}) {}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, opt_.stride, opt_.padding, opt_.dilation, opt_.groups);
}

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel,
                                 Conv2dOptions options)
    : ConvLayerBase("ConvTranspose2d", in_channels, out_channels, kernel, options,
                    {in_channels, out_channels / std::max<int64_t>(options.groups, 1), kernel[0],
                     kernel[1]}) {}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, opt_.stride, opt_.padding, opt_.output_padding,
                          opt_.groups, opt_.dilation);
}

}  // namespace cvg::nn
