#pragma once
// Per-element update rules of the optimizers, shared by the CPU loops (nn/optim.cpp) and the
// fused CUDA kernels (nn/optim_cuda.cu). Each function updates element i of a parameter and its
// state in place, reading the gradient. They follow PyTorch's formulations (torch.optim) so that
// hyperparameters carry over:
//   SGD     : g' = g + wd p;  buf = mu buf + (1 - dampening) g'  (buf = g' on the first step);
//             d = nesterov ? g' + mu buf : buf  (d = g' without momentum);  p -= lr d
//   Adam    : g' = g + wd p;  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;
//             p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//   AdamW   : p -= lr wd p first (decoupled decay), then Adam with wd = 0
//   RMSprop : g' = g + wd p;  s = alpha s + (1 - alpha) g'^2;  d = g' / (sqrt(s) + eps);
//             with momentum buf = mu buf + d, p -= lr buf; else p -= lr d
#include <cmath>

#include "core/hd.h"

namespace cvg::nn {

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};

template <typename T>
CVG_HD void sgd_update(T* p, const T* g, T* buf, int64_t i, const SgdHyper& h) {
  T d = g[i] + static_cast<T>(h.weight_decay) * p[i];
  if (h.momentum != 0) {
    const T mu = static_cast<T>(h.momentum);
    buf[i] = h.first_step ? d : mu * buf[i] + static_cast<T>(1 - h.dampening) * d;
    d = h.nesterov ? d + mu * buf[i] : buf[i];
  }
  p[i] -= static_cast<T>(h.lr) * d;
}

struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;        // AdamW
  double bias1, bias2;   // 1 - beta^t, computed once per step on the host
};

template <typename T>
CVG_HD void adam_update(T* p, const T* g, T* m, T* v, int64_t i, const AdamHyper& h) {
  using std::sqrt;
  T grad = g[i];
  if (h.decoupled) p[i] -= static_cast<T>(h.lr * h.weight_decay) * p[i];
  else grad += static_cast<T>(h.weight_decay) * p[i];
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  m[i] = b1 * m[i] + (T(1) - b1) * grad;
  v[i] = b2 * v[i] + (T(1) - b2) * grad * grad;
  const T mhat = m[i] / static_cast<T>(h.bias1);
  const T vhat = v[i] / static_cast<T>(h.bias2);
  p[i] -= static_cast<T>(h.lr) * mhat / (sqrt(vhat) + static_cast<T>(h.eps));
}

struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
};

template <typename T>
CVG_HD void rmsprop_update(T* p, const T* g, T* sq, T* buf, int64_t i, const RmspropHyper& h) {
  using std::sqrt;
  const T grad = g[i] + static_cast<T>(h.weight_decay) * p[i];
  const T a = static_cast<T>(h.alpha);
  sq[i] = a * sq[i] + (T(1) - a) * grad * grad;
  const T d = grad / (sqrt(sq[i]) + static_cast<T>(h.eps));
  if (h.momentum != 0) {
    buf[i] = static_cast<T>(h.momentum) * buf[i] + d;
    p[i] -= static_cast<T>(h.lr) * buf[i];
  } else {
    p[i] -= static_cast<T>(h.lr) * d;
  }
}

}  // namespace cvg::nn
