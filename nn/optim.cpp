#include "nn/optim.h"

#include <cmath>

#include "core/autograd.h"
#include "core/parallel.h"
#include "kernels/unary.h"

namespace cvg::nn {

namespace {

// Calls cpu(T*) loops or the CUDA launcher for parameter p; every tensor is contiguous, of p's
// dtype and device (checked here once, so the kernels can index flat arrays).
void check_same(const char* op, const Tensor& p, const TensorList& others) {
  CVG_CHECK(p.is_contiguous(), op, ": parameters must be contiguous");
  for (const Tensor& t : others) {
    CVG_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype() && t.device() == p.device() &&
                  t.is_contiguous(),
              op, ": state/gradient ", t.shape(), " ", dtype_name(t.dtype()), " on ",
              t.device().str(), " does not match parameter ", p.shape(), " ",
              dtype_name(p.dtype()), " on ", p.device().str());
  }
}

template <typename Fn>
void for_each_element(const Tensor& p, Fn&& fn) {
  dispatch_floating(p.dtype(), "optimizer", [&](auto tag) {
    using T = decltype(tag);
    parallel_for(p.numel(), 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) fn(T{}, i);
    });
  });
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params, double lr)
    : params_(std::move(params)), state_(params_.size()), lr_(lr) {
  for (size_t i = 0; i < params_.size(); ++i)
    CVG_CHECK(params_[i].defined() && params_[i].requires_grad() && params_[i].is_leaf(),
              "optimizer: parameter ", i, " must be a leaf tensor that requires grad");
  CVG_CHECK(lr >= 0, "optimizer: learning rate must be >= 0, got ", lr);
}

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

Tensor& Optimizer::state(size_t i, const std::string& name) {
  Tensor& t = state_[i][name];
  if (!t.defined()) t = zeros(params_[i].shape(), params_[i].options());
  return t;
}

StateDict Optimizer::state_dict() const {
  StateDict out;
  out["step"] = from_vector<int64_t>({step_}, {}, TensorOptions{}.with_dtype(DType::int64));
  out["lr"] = from_vector<double>({lr_}, {}, TensorOptions{}.with_dtype(DType::float64));
  for (size_t i = 0; i < state_.size(); ++i)
    for (auto& [name, t] : state_[i]) out[std::to_string(i) + "." + name] = t.detach();
  return out;
}

void Optimizer::load_state_dict(const StateDict& state) {
  // Everything is checked before anything changes: a refused state leaves the optimizer as it was.
  auto step = state.find("step");
  CVG_CHECK(step != state.end(), "optimizer load_state_dict: missing 'step'");
  CVG_CHECK(step->second.numel() == 1, "optimizer load_state_dict: 'step' must hold one value, has shape ",
            step->second.shape());
  // A negative or fractional count would turn Adam's bias corrections into garbage (NaN weights
  // at the next step).
  const double count = step->second.item<double>();
  CVG_CHECK(count >= 0 && count == std::floor(count) && count < 9.0e15, "optimizer load_state_dict: 'step' must be a "
            "whole number >= 0, got ", count);
  double lr = lr_;
  if (auto l = state.find("lr"); l != state.end()) lr = l->second.item<double>();
  std::vector<std::map<std::string, Tensor>> loaded(state_.size());
  for (auto& [key, t] : state) {
    if (key == "step" || key == "lr") continue;
    const size_t dot = key.find('.');
    const std::string index = dot == std::string::npos ? std::string() : key.substr(0, dot);
    CVG_CHECK(!index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos &&
                  dot + 1 < key.size(),
              "optimizer load_state_dict: bad key '", key, "' (expected PARAMETER_INDEX.NAME, e.g. '0.exp_avg')");
    const size_t i = std::stoul(index);
    CVG_CHECK(i < params_.size(), "optimizer load_state_dict: key '", key, "' names parameter ",
              i, " but the optimizer has ", params_.size());
    CVG_CHECK(t.shape() == params_[i].shape(), "optimizer load_state_dict: '", key,
              "' has shape ", t.shape(), ", parameter has ", params_[i].shape());
    loaded[i][key.substr(dot + 1)] = t.detach().to(params_[i].device()).to(params_[i].dtype()).clone().detach();
  }
  step_ = static_cast<int64_t>(count);
  lr_ = lr;
  state_ = std::move(loaded);
}

SGD::SGD(std::vector<Tensor> params, SgdOptions opt) : Optimizer(std::move(params), opt.lr), opt_(opt) {
  CVG_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
            "SGD: nesterov needs momentum > 0 and dampening 0");
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    const bool first = !state_[i].count("momentum_buffer");
    const Tensor buf = opt_.momentum != 0 ? state(i, "momentum_buffer") : p;
    const SgdHyper h{lr_, opt_.momentum, opt_.dampening, opt_.weight_decay, opt_.nesterov, first};
    const Tensor gc = g.contiguous();
    check_same("SGD", p, {gc, buf});
    if (p.is_cuda()) {
#ifdef CVG_WITH_CUDA
      sgd_step_cuda(p, gc, buf, h);
#endif
    } else {
      for_each_element(p, [&](auto tag, int64_t e) {
        using T = decltype(tag);
        sgd_update<T>(p.data<T>(), gc.data<T>(), buf.data<T>(), e, h);
      });
    }
    p.bump_version();
  }
  ++step_;
}

Adam::Adam(std::vector<Tensor> params, AdamOptions opt, bool decoupled)
    : Optimizer(std::move(params), opt.lr), opt_(opt), decoupled_(decoupled) {
  CVG_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
            decoupled ? "AdamW" : "Adam", ": betas must be in [0, 1), got (", opt.beta1, ", ",
            opt.beta2, ")");
}

void Adam::step() {
  NoGradGuard no_grad;
  ++step_;
  const double t = static_cast<double>(step_);
  const AdamHyper h{lr_, opt_.beta1, opt_.beta2, opt_.eps, opt_.weight_decay, decoupled_,
                    1 - std::pow(opt_.beta1, t), 1 - std::pow(opt_.beta2, t)};
#ifdef CVG_WITH_CUDA
  std::vector<AdamSlot> on_gpu;  // updated together after the loop: few launches for many tensors
#endif
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    const Tensor gc = g.contiguous();
    const Tensor m = state(i, "exp_avg"), v = state(i, "exp_avg_sq");
    check_same(decoupled_ ? "AdamW" : "Adam", p, {gc, m, v});
    if (p.is_cuda()) {
#ifdef CVG_WITH_CUDA
      on_gpu.push_back({p, gc, m, v});
#endif
    } else {
      for_each_element(p, [&](auto tag, int64_t e) {
        using T = decltype(tag);
        adam_update<T>(p.data<T>(), gc.data<T>(), m.data<T>(), v.data<T>(), e, h);
      });
    }
    p.bump_version();
  }
#ifdef CVG_WITH_CUDA
  if (!on_gpu.empty()) adam_step_cuda(on_gpu, h);
#endif
}

RMSprop::RMSprop(std::vector<Tensor> params, RmspropOptions opt)
    : Optimizer(std::move(params), opt.lr), opt_(opt) {}

void RMSprop::step() {
  NoGradGuard no_grad;
  const RmspropHyper h{lr_, opt_.alpha, opt_.eps, opt_.weight_decay, opt_.momentum};
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    const Tensor gc = g.contiguous();
    const Tensor sq = state(i, "square_avg");
    const Tensor buf = opt_.momentum != 0 ? state(i, "momentum_buffer") : sq;
    check_same("RMSprop", p, {gc, sq, buf});
    if (p.is_cuda()) {
#ifdef CVG_WITH_CUDA
      rmsprop_step_cuda(p, gc, sq, buf, h);
#endif
    } else {
      for_each_element(p, [&](auto tag, int64_t e) {
        using T = decltype(tag);
        rmsprop_update<T>(p.data<T>(), gc.data<T>(), sq.data<T>(), buf.data<T>(), e, h);
      });
    }
    p.bump_version();
  }
  ++step_;
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  CVG_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  NoGradGuard no_grad;
  double total = 0;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    for (double x : g.to_vector<double>()) total += x * x;
  }
  total = std::sqrt(total);
  if (total > max_norm) {
    const double scale = max_norm / (total + 1e-6);
    for (const Tensor& p : params)
      if (p.grad().defined()) p.set_grad(p.grad() * scale);
  }
  return total;
}

double StepLR::operator()(int64_t step) const {
  CVG_CHECK(step_size > 0, "StepLR: step_size must be positive");
  return lr0 * std::pow(gamma, static_cast<double>(step / step_size));
}

double CosineLR::operator()(int64_t step) const {
  CVG_CHECK(total_steps > 0, "CosineLR: total_steps must be positive");
  const double p = std::min(1.0, static_cast<double>(step) / static_cast<double>(total_steps));
  return lr_min + 0.5 * (lr0 - lr_min) * (1 + std::cos(3.141592653589793 * p));
}

double InverseDecayLR::operator()(int64_t step) const {
  CVG_CHECK(total_steps > 0, "InverseDecayLR: total_steps must be positive");
  const double p = std::min(1.0, static_cast<double>(step) / static_cast<double>(total_steps));
  return lr0 / std::pow(1 + a * p, b);
}

}  // namespace cvg::nn
