#pragma once
// Normalisation layers over NCHW batches (kernels/norm.h has the ops and their conventions).
//   BatchNorm2d     per-channel batch statistics in train mode, running statistics in eval mode.
//                   Parameters weight (1) and bias (0) of size C when affine; buffers
//                   running_mean (0), running_var (1) and num_batches_tracked when
//                   track_running_stats, as PyTorch, so checkpoints map one to one.
//   InstanceNorm2d  statistics per (n, c) plane in both modes (PyTorch's default: no running
//                   statistics, affine off).
#include "nn/module.h"

namespace cvg::nn {

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, BatchNormOptions options = {});
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  int64_t channels_;
  BatchNormOptions opt_;
};

class InstanceNorm2d : public Module {
 public:
  explicit InstanceNorm2d(int64_t channels, double eps = 1e-5, bool affine = false);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Tensor weight, bias;

 private:
  int64_t channels_;
  double eps_;
};

}  // namespace cvg::nn
