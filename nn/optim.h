#pragma once
// Optimizers, gradient clipping and learning-rate schedules.
//
// An optimizer holds handles to the parameters it was given: create it after moving the model
// to its device. step() reads each parameter's grad() (parameters without a gradient are
// skipped, as in PyTorch) and updates parameter and state in place, outside autograd. On CUDA
// each parameter is updated by one fused kernel (nn/optim_cuda.cu); the per-element math is
// shared with the CPU loop (nn/optim_math.h).
//
// state_dict() holds everything needed to resume bit-identically: the step count and every state
// tensor, named "<param index>.<state>" (e.g. "3.exp_avg"). load_state_dict() checks the whole
// state before it changes anything.
//
// The step count is the optimizer's, not each parameter's: Adam's bias corrections use the
// number of step() calls, where PyTorch counts the steps each parameter took. The two agree
// whenever every parameter has a gradient at every step (all of this project's apps); a
// parameter that first gets a gradient late takes smaller first steps here than in PyTorch.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/module.h"
#include "nn/optim_math.h"

namespace cvg::nn {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t steps() const { return step_; }
  const std::vector<Tensor>& params() const { return params_; }

  StateDict state_dict() const;
  void load_state_dict(const StateDict& state);

 protected:
  // The state tensor `name` of parameter i (zeros like the parameter on first use).
  Tensor& state(size_t i, const std::string& name);
  std::vector<Tensor> params_;
  std::vector<std::map<std::string, Tensor>> state_;
  double lr_;
  int64_t step_ = 0;
};

struct SgdOptions {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SgdOptions opt);
  void step() override;
 private:
  SgdOptions opt_;
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions opt, bool decoupled_weight_decay = false);
  void step() override;
 private:
  AdamOptions opt_;
  bool decoupled_;
};
// Adam with decoupled weight decay (Loshchilov & Hutter); PyTorch's default decay is 0.01.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamOptions opt) : Adam(std::move(params), opt, true) {}
};

struct RmspropOptions {
  double lr = 0.01, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0;
};
class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<Tensor> params, RmspropOptions opt);
  void step() override;
 private:
  RmspropOptions opt_;
};

// Scales all gradients by max_norm / total_norm when the total L2 norm exceeds max_norm;
// returns the total norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// Learning-rate schedules: lr(step) as pure functions of the step (resuming needs no state).
struct StepLR {
  double lr0; int64_t step_size; double gamma = 0.1;
  double operator()(int64_t step) const;
};
struct CosineLR {
  double lr0; int64_t total_steps; double lr_min = 0;
  double operator()(int64_t step) const;
};
// DANN's schedule: lr0 / (1 + a p)^b with p = step / total_steps in [0, 1].
struct InverseDecayLR {
  double lr0; int64_t total_steps; double a = 10, b = 0.75;
  double operator()(int64_t step) const;
};

#ifdef CVG_WITH_CUDA
void sgd_step_cuda(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdHyper& h);
// Adam over several CUDA parameters (each with its contiguous gradient and state) in as few
// launches as possible: runs of up to 24 tensors of one dtype share a launch.
struct AdamSlot {
  Tensor p, g, m, v;
};
void adam_step_cuda(const std::vector<AdamSlot>& slots, const AdamHyper& h);
void rmsprop_step_cuda(const Tensor& p, const Tensor& g, const Tensor& sq, const Tensor& buf,
                       const RmspropHyper& h);
#endif

}  // namespace cvg::nn
