#include "nn/pool_layers.h"

namespace cvg::nn {

namespace {
std::string pair_str(PoolSize2 p) { return str_cat(p[0], "x", p[1]); }
const char* mode_name(InterpMode m) { return m == InterpMode::Nearest ? "nearest" : "bilinear"; }
}  // namespace

MaxPool2d::MaxPool2d(PoolSize2 kernel, std::optional<PoolSize2> stride, PoolSize2 padding,
                     PoolSize2 dilation, bool ceil_mode)
    : kernel_(kernel), stride_(stride.value_or(kernel)), padding_(padding), dilation_(dilation),
      ceil_mode_(ceil_mode) {}

Tensor MaxPool2d::forward(const Tensor& x) {
  return max_pool2d(x, kernel_, stride_, padding_, dilation_, ceil_mode_);
}

PooledWithSwitches MaxPool2d::forward_with_switches(const Tensor& x) const {
  return max_pool2d_with_indices(x, kernel_, stride_, padding_, dilation_, ceil_mode_);
}

std::string MaxPool2d::describe() const {
  std::string s = str_cat("MaxPool2d(kernel=", pair_str(kernel_), ", stride=", pair_str(stride_));
  if (padding_ != PoolSize2{0, 0}) s += ", padding=" + pair_str(padding_);
  if (dilation_ != PoolSize2{1, 1}) s += ", dilation=" + pair_str(dilation_);
  if (ceil_mode_) s += ", ceil_mode=true";
  return s + ")";
}

Tensor MaxUnpool2d::unpool(const Tensor& x, const Tensor& switches, PoolSize2 output_size) const {
  return max_unpool2d(x, switches, output_size);
}

Tensor MaxUnpool2d::forward(const Tensor&) {
  fail("MaxUnpool2d: forward(x) needs the switches and the output size; call "
       "unpool(x, switches, output_size)");
}

AvgPool2d::AvgPool2d(PoolSize2 kernel, std::optional<PoolSize2> stride, PoolSize2 padding,
                     bool ceil_mode, bool count_include_pad)
    : kernel_(kernel), stride_(stride.value_or(kernel)), padding_(padding), ceil_mode_(ceil_mode),
      count_include_pad_(count_include_pad) {}

Tensor AvgPool2d::forward(const Tensor& x) {
  return avg_pool2d(x, kernel_, stride_, padding_, ceil_mode_, count_include_pad_);
}

std::string AvgPool2d::describe() const {
  std::string s = str_cat("AvgPool2d(kernel=", pair_str(kernel_), ", stride=", pair_str(stride_));
  if (padding_ != PoolSize2{0, 0}) s += ", padding=" + pair_str(padding_);
  if (ceil_mode_) s += ", ceil_mode=true";
  if (!count_include_pad_) s += ", count_include_pad=false";
  return s + ")";
}

std::shared_ptr<Upsample> Upsample::to_size(std::array<int64_t, 2> size, InterpMode mode,
                                            bool align_corners) {
  CVG_CHECK(size[0] > 0 && size[1] > 0, "Upsample: size must be positive, got ", size[0], "x",
            size[1]);
  return std::shared_ptr<Upsample>(new Upsample(size, 0.0, mode, align_corners));
}

std::shared_ptr<Upsample> Upsample::by_scale(double scale_factor, InterpMode mode, bool align_corners) {
  CVG_CHECK(scale_factor > 0, "Upsample: scale_factor must be positive, got ", scale_factor);
  return std::shared_ptr<Upsample>(new Upsample(std::nullopt, scale_factor, mode, align_corners));
}

Tensor Upsample::forward(const Tensor& x) {
  return size_ ? interpolate(x, *size_, mode_, align_corners_)
               : interpolate(x, scale_, mode_, align_corners_);
}

std::string Upsample::describe() const {
  return size_ ? str_cat("Upsample(size=", (*size_)[0], "x", (*size_)[1], ", mode=", mode_name(mode_), ")")
               : str_cat("Upsample(scale_factor=", scale_, ", mode=", mode_name(mode_), ")");
}

}  // namespace cvg::nn
