// CPU loops of the loss kernels (kernels/loss.h).
//   nll_class_weights: one pass over the targets, writing weight[t] into W[n, t, i]. Serial: it
//     touches N * inner elements of a map that was just zero-filled, and stopping at the first
//     invalid target keeps the error deterministic.
//   cross_entropy_fused: targets are validated first (serially, same reason), then rows are
//     split across threads; each row is read once for its online softmax state and once more
//     to write dlogits (kernels/loss_math.h).
#include <algorithm>

#include "core/parallel.h"
#include "kernels/loss.h"
#include "kernels/loss_math.h"

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
template <typename I>
int64_t first_invalid(const I* target, int64_t count, int64_t C, int64_t ignore_index) {
  for (int64_t k = 0; k < count; ++k) {
    const int64_t c = static_cast<int64_t>(target[k]);
    if (c != ignore_index && (c < 0 || c >= C)) return c;
  }
  return ignore_index;
}

template <typename I, typename T>
void cross_entropy_rows(const T* x, const I* target, const T* weight, int64_t N, int64_t C,
                        int64_t ignore_index, T* losses, T* row_weight, T* dlogits) {
  parallel_for(N, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, C)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* xr = x + n * C;
      T* dr = dlogits + n * C;
      const int64_t t = static_cast<int64_t>(target[n]);
      if (t == ignore_index) {
        losses[n] = T(0);
        row_weight[n] = T(0);
        for (int64_t c = 0; c < C; ++c) dr[c] = T(0);
        continue;
      }
      const T w = weight ? weight[t] : T(1);
      SoftmaxState<T> st = softmax_init<T>();
      for (int64_t c = 0; c < C; ++c) softmax_add(st, xr[c]);
      losses[n] = cross_entropy_row_loss(xr[t], st, w);
      row_weight[n] = w;
      for (int64_t c = 0; c < C; ++c) dr[c] = cross_entropy_dlogit(xr[c], st, c == t, w);
    }
  });
}

}  // namespace

int64_t cross_entropy_fused_cpu(const Tensor& logits, const Tensor& target, const Tensor& weight,
                                int64_t ignore_index, const Tensor& losses,
                                const Tensor& row_weight, const Tensor& dlogits) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  return dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) -> int64_t {
    using T = decltype(tag);
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    auto run = [&](auto itag) -> int64_t {
      using I = decltype(itag);
      const I* pt = target.data<I>();
      const int64_t bad = first_invalid(pt, N, C, ignore_index);
      if (bad != ignore_index) return bad;
      cross_entropy_rows<I, T>(logits.data<T>(), pt, pw, N, C, ignore_index, losses.data<T>(),
                               row_weight.data<T>(), dlogits.data<T>());
      return ignore_index;
    };
    return target.dtype() == DType::int64 ? run(int64_t{}) : run(int32_t{});
  });
}

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
