// CPU loop of nll_class_weights (kernels/loss.h): one pass over the targets, writing
// weight[t] into W[n, t, i]. Serial: it touches N * inner elements of an [N, C, inner] map that
// was just zero-filled, and stopping at the first invalid target keeps the error deterministic.
#include "kernels/loss.h"

namespace cvg {

namespace {
template <typename I, typename T>
int64_t fill_class_weights(const I* target, const T* weight, T* W, int64_t count, int64_t C,
                           int64_t inner, int64_t ignore_index) {
  for (int64_t k = 0; k < count; ++k) {
    const int64_t c = static_cast<int64_t>(target[k]);
    if (c == ignore_index) continue;
    if (c < 0 || c >= C) return c;
    const int64_t n = k / inner, i = k % inner;
    W[(n * C + c) * inner + i] = weight ? weight[c] : T(1);
  }
  return ignore_index;
}
}  // namespace

int64_t nll_class_weights_cpu(const Tensor& target, const Tensor& weight, const Tensor& W,
                              int64_t C, int64_t inner, int64_t ignore_index) {
  return dispatch_floating(W.dtype(), "nll_loss", [&](auto wtag) -> int64_t {
    using T = decltype(wtag);
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    if (target.dtype() == DType::int64)
      return fill_class_weights<int64_t, T>(target.data<int64_t>(), pw, W.data<T>(),
                                            target.numel(), C, inner, ignore_index);
    return fill_class_weights<int32_t, T>(target.data<int32_t>(), pw, W.data<T>(), target.numel(),
                                          C, inner, ignore_index);
  });
}

}  // namespace cvg
