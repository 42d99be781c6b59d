#pragma once
// The landmark detector of thesis chapter 4: the SIMPLE network (chapter 5 section 3.2, after
// TCDCN minus its repeated downsampling) with K output channels,
//     (5,20) mp2 (5,48) (3,64) (3,80) (3,256) (1,K)     (kernel size, filters)
// "same" padding, a single 2 x 2 / 2 max-pool after the first convolution, BatchNorm + ReLU
// after every convolution but the last. The last 1 x 1 convolution outputs the K logit maps
// (with a bias, no BatchNorm, no ReLU: a ReLU would clip the logits; the thesis is ambiguous,
// see ../shared/papers section 8.3). Output: N x K x H/2 x W/2.
// `width` scales every hidden layer's filters (0.5 is the half-width CPU variant of the notes:
// 10, 24, 32, 40, 128). Weights start from PyTorch's default uniform initialisation (the thesis
// says "Gaussian", without a scale); BatchNorm makes the scale immaterial.
//
// landmarks() turns logits into probability maps (spatial softmax) and positions (soft-argmax,
// kernels/spatial.h) in output pixels and in input pixels (u_in = 2 u_out + 0.5: output pixel
// (i, j) covers input pixels 2i..2i+1 x 2j..2j+1).
#include <memory>

#include "nn/module.h"

namespace cvg::landmarks {

struct DetectorOptions {
  int64_t landmarks = 10;  // K
  int64_t in_channels = 3;
  double width = 1.0;
};

class Detector : public nn::Module {
 public:
  explicit Detector(DetectorOptions options);
  Tensor forward(const Tensor& images) override;  // logits N x K x H/2 x W/2
  std::string describe() const override;
  const DetectorOptions& options() const { return opt_; }

 private:
  DetectorOptions opt_;
  std::shared_ptr<nn::Sequential> net_;
};

// Input pixel position of output pixel coordinates (stride 2).
Tensor output_to_input_pixels(const Tensor& u_out);

}  // namespace cvg::landmarks
