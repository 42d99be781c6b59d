#pragma once
// Pooling and resampling layers over NCHW batches (kernels/pool.h and kernels/sample.h have the
// ops and their conventions: switch layout, tie-breaking, unpooling overlap rule, output sizes).
//   MaxPool2d     forward() returns the pooled values; forward_with_switches() also returns the
//                 int32 plane-local switches (h * W + w) that MaxUnpool2d consumes.
//   MaxUnpool2d   unpool(x, switches, output_size) scatters back; output_size is required,
//                 since several input sizes pool to the same output size.
//   AvgPool2d     average over each window.
//   Upsample      interpolate by a scale factor or to a fixed size (nearest or bilinear).
#include <array>
#include <optional>

#include "kernels/pool.h"
#include "kernels/sample.h"
#include "nn/module.h"

namespace cvg::nn {

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(PoolSize2 kernel, std::optional<PoolSize2> stride = std::nullopt,
                     PoolSize2 padding = {0, 0}, PoolSize2 dilation = {1, 1}, bool ceil_mode = false);
  explicit MaxPool2d(int64_t kernel) : MaxPool2d(PoolSize2{kernel, kernel}) {}
  Tensor forward(const Tensor& x) override;
  PooledWithSwitches forward_with_switches(const Tensor& x) const;
  std::string describe() const override;

 private:
  PoolSize2 kernel_, stride_, padding_, dilation_;
  bool ceil_mode_;
};

class MaxUnpool2d : public Module {
 public:
  MaxUnpool2d() = default;
  Tensor unpool(const Tensor& x, const Tensor& switches, PoolSize2 output_size) const;
  // forward(x) alone cannot know where the values go: it is an Error naming unpool().
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "MaxUnpool2d"; }
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(PoolSize2 kernel, std::optional<PoolSize2> stride = std::nullopt,
                     PoolSize2 padding = {0, 0}, bool ceil_mode = false, bool count_include_pad = true);
  explicit AvgPool2d(int64_t kernel) : AvgPool2d(PoolSize2{kernel, kernel}) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

 private:
  PoolSize2 kernel_, stride_, padding_;
  bool ceil_mode_, count_include_pad_;
};

class Upsample : public Module {
 public:
  // Exactly one of size and scale_factor.
  static std::shared_ptr<Upsample> to_size(std::array<int64_t, 2> size,
                                           InterpMode mode = InterpMode::Nearest,
                                           bool align_corners = false);
  static std::shared_ptr<Upsample> by_scale(double scale_factor, InterpMode mode = InterpMode::Nearest,
                                            bool align_corners = false);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

 private:
  Upsample(std::optional<std::array<int64_t, 2>> size, double scale, InterpMode mode, bool align)
      : size_(size), scale_(scale), mode_(mode), align_corners_(align) {}
  std::optional<std::array<int64_t, 2>> size_;
  double scale_;
  InterpMode mode_;
  bool align_corners_;
};

}  // namespace cvg::nn
