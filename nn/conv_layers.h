#pragma once
// Convolution layers over NCHW batches (kernels/conv.h has the ops and their conventions).
// Parameters follow PyTorch's layouts and default initialisation, so state dicts map one to one:
//   Conv2d          weight [out, in / groups, kH, kW], bias [out]
//   ConvTranspose2d weight [in, out / groups, kH, kW], bias [out]
// Both draw weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = weight.size(1)
// * kH * kW (PyTorch's kaiming_uniform with a = sqrt(5) reduces to this bound); call nn::init on
// .weight to choose another scheme.
#include <array>

#include "nn/module.h"

namespace cvg::nn {

using Size2 = std::array<int64_t, 2>;  // {height, width}

struct Conv2dOptions {
  Size2 stride{1, 1};
  Size2 padding{0, 0};
  Size2 dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
  Size2 output_padding{0, 0};  // ConvTranspose2d only
};

// What both convolution layers hold: the weight (whose layout differs), an optional bias of
// size out_channels, and their configuration.
class ConvLayerBase : public Module {
 public:
  Tensor weight, bias;

 protected:
  // weight_shape: the layer's weight layout; checks the channels, kernel and groups.
  ConvLayerBase(const char* name, int64_t in_channels, int64_t out_channels, Size2 kernel,
                Conv2dOptions options, const Shape& weight_shape);
  std::string describe_as(const char* name, bool transposed) const;
  int64_t in_, out_;
  Size2 kernel_;
  Conv2dOptions opt_;
};

class Conv2d : public ConvLayerBase {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel, Conv2dOptions options = {});
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, Conv2dOptions options = {})
      : Conv2d(in_channels, out_channels, Size2{kernel, kernel}, options) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return describe_as("Conv2d", false); }
};

class ConvTranspose2d : public ConvLayerBase {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel, Conv2dOptions options = {});
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, int64_t kernel, Conv2dOptions options = {})
      : ConvTranspose2d(in_channels, out_channels, Size2{kernel, kernel}, options) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return describe_as("ConvTranspose2d", true); }
};

// "Same" padding for an odd kernel: d (k - 1) / 2 keeps H x W at stride 1.
int64_t same_padding(int64_t kernel, int64_t dilation = 1);

}  // namespace cvg::nn
