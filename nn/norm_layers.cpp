#include "nn/norm_layers.h"

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/norm.h"

namespace cvg::nn {

namespace {
void check_input(const char* layer, const Tensor& x, int64_t channels) {
  CVG_CHECK(x.dim() == 4 && x.size(1) == channels, layer, ": expected N x ", channels,
            " x H x W input, got shape ", x.shape());
}
}  // namespace

BatchNorm2d::BatchNorm2d(int64_t channels, BatchNormOptions options)
    : channels_(channels), opt_(options) {
  CVG_CHECK(channels > 0, "BatchNorm2d: channels must be positive, got ", channels);
  CVG_CHECK(options.eps > 0 && options.momentum >= 0 && options.momentum <= 1,
            "BatchNorm2d: needs eps > 0 and momentum in [0, 1], got eps=", options.eps,
            " momentum=", options.momentum);
  if (opt_.affine) {
    weight = ones({channels});
    bias = zeros({channels});
    register_parameter("weight", &weight);
    register_parameter("bias", &bias);
  }
  if (opt_.track_running_stats) {
    running_mean = zeros({channels});
    running_var = ones({channels});
    num_batches_tracked = zeros({}, TensorOptions{}.with_dtype(DType::int64));
    register_buffer("running_mean", &running_mean);
    register_buffer("running_var", &running_var);
    register_buffer("num_batches_tracked", &num_batches_tracked);
  }
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  check_input("BatchNorm2d", x, channels_);
  // Without running statistics the layer normalises with batch statistics in both modes.
  const bool use_batch_stats = is_training() || !opt_.track_running_stats;
  if (is_training() && opt_.track_running_stats) {
    NoGradGuard no_grad;
    // Counted on the buffer's device: reading it back (item()) would make every training
    // forward on a GPU wait for all the work queued before it.
    num_batches_tracked.copy_(add(num_batches_tracked, ones({}, num_batches_tracked.options())));
  }
  return batch_norm(x, weight, bias, running_mean, running_var, use_batch_stats, opt_.momentum,
                    opt_.eps);
}

std::string BatchNorm2d::describe() const {
  return str_cat("BatchNorm2d(", channels_, ", eps=", opt_.eps, ", momentum=", opt_.momentum,
                 ", affine=", opt_.affine ? "true" : "false",
                 ", track_running_stats=", opt_.track_running_stats ? "true" : "false", ")");
}

InstanceNorm2d::InstanceNorm2d(int64_t channels, double eps, bool affine)
    : channels_(channels), eps_(eps) {
  CVG_CHECK(channels > 0 && eps > 0, "InstanceNorm2d: needs channels > 0 and eps > 0, got ",
            channels, " and ", eps);
  if (affine) {
    weight = ones({channels});
    bias = zeros({channels});
    register_parameter("weight", &weight);
    register_parameter("bias", &bias);
  }
}

Tensor InstanceNorm2d::forward(const Tensor& x) {
  check_input("InstanceNorm2d", x, channels_);
  return instance_norm(x, weight, bias, eps_);
}

std::string InstanceNorm2d::describe() const {
  return str_cat("InstanceNorm2d(", channels_, ", eps=", eps_,
                 ", affine=", weight.defined() ? "true" : "false", ")");
}

}  // namespace cvg::nn
