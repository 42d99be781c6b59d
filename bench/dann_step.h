#pragma once
// One DANN training step (models/dann/model.h, as apps/dann runs it), shared by the CPU and the
// GPU benchmark (bench/cpu_dann.cpp, bench/cuda_dann.cpp): n source + n target images of
// 3 x 28 x 28 through G_f, the label loss on the source half, the domain loss behind the gradient
// reversal layer on all 2n, backward, SGD with momentum 0.9. The source-only step runs n images
// through G_f and G_y. PyTorch's side: bench/torch_ops/dann.py.
#include <memory>
#include <vector>

#include "core/rng.h"
#include "models/dann/model.h"
#include "nn/optim.h"

namespace cvg::bench {

// Owns the network, optimizer and inputs; step() queues one step and returns its total loss
// (still on the device: reading it would wait for the GPU).
class DannStep {
 public:
  DannStep(dann::Mode mode, int64_t n, Device device, const std::vector<int64_t>& domain_hidden = {100})
      : mode_(mode) {
    manual_seed(5);
    net_ = std::make_unique<dann::DannNet>(std::array<double, 3>{0.45, 0.45, 0.45}, domain_hidden);
    net_->to(device);
    opt_ = std::make_unique<nn::SGD>(net_->parameters(), nn::SgdOptions{.lr = 0.01, .momentum = 0.9});
    xs_ = rand({n, 3, 28, 28}).to(device);
    xt_ = rand({n, 3, 28, 28}).to(device);
    ys_ = randint(0, 10, {n}).to(device);
  }

  Tensor step() {
    opt_->zero_grad();
    const dann::StepLoss loss = dann::training_loss(*net_, mode_, xs_, ys_, xt_, ys_, 0.5);
    loss.total.backward();
    opt_->step();
    return loss.total;
  }

 private:
  dann::Mode mode_;
  std::unique_ptr<dann::DannNet> net_;
  std::unique_ptr<nn::SGD> opt_;
  Tensor xs_, xt_, ys_;
};

}  // namespace cvg::bench
