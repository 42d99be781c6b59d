#include "models/landmarks/detector.h"

#include <cmath>

#include "kernels/unary.h"
#include "nn/conv_layers.h"
#include "nn/layers.h"
#include "nn/norm_layers.h"
#include "nn/pool_layers.h"

namespace cvg::landmarks {

Detector::Detector(DetectorOptions options) : opt_(options) {
  CVG_CHECK(opt_.landmarks >= 1 && opt_.in_channels >= 1 && opt_.width > 0,
            "Detector: need landmarks >= 1, in_channels >= 1 and width > 0, got ", opt_.landmarks,
            ", ", opt_.in_channels, ", ", opt_.width);
  auto filters = [&](int64_t c) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::lround(static_cast<double>(c) * opt_.width)));
  };
  net_ = std::make_shared<nn::Sequential>();
  int64_t in = opt_.in_channels;
  const std::pair<int64_t, int64_t> layers[] = {{5, 20}, {5, 48}, {3, 64}, {3, 80}, {3, 256}};
  for (size_t i = 0; i < std::size(layers); ++i) {
    const auto [k, c] = layers[i];
    const int64_t out = filters(c);
    const int64_t pad = nn::same_padding(k);
    // No conv bias before BatchNorm: its mean subtraction would cancel it.
    net_->push_back(std::make_shared<nn::Conv2d>(
        in, out, k, nn::Conv2dOptions{.padding = {pad, pad}, .bias = false}));
    net_->push_back(std::make_shared<nn::BatchNorm2d>(out));
    net_->push_back(std::make_shared<nn::ReLU>());
    if (i == 0) net_->push_back(std::make_shared<nn::MaxPool2d>(2));
    in = out;
  }
  net_->push_back(std::make_shared<nn::Conv2d>(in, opt_.landmarks, 1));
  register_module("net", net_);
}

Tensor Detector::forward(const Tensor& images) {
  CVG_CHECK(images.dim() == 4 && images.size(1) == opt_.in_channels && images.size(2) % 2 == 0 &&
                images.size(3) % 2 == 0,
            "Detector: expected N x ", opt_.in_channels, " x H x W images with even H and W, got ",
            images.shape());
  return net_->forward(images);
}

std::string Detector::describe() const {
  return str_cat("Detector(K=", opt_.landmarks, ", width=", opt_.width, ")");
}

Tensor output_to_input_pixels(const Tensor& u_out) { return u_out * 2.0 + 0.5; }

}  // namespace cvg::landmarks
