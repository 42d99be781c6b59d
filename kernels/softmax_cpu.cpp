// CPU softmax / log_softmax over rows of a contiguous x read as [outer, D, inner].
// Work is split into tasks of (one outer index, a chunk of up to kCols adjacent inner indices):
// the task walks d = 0..D-1 and updates one online state per column, so with inner > 1 each
// step reads kCols adjacent elements (cache lines are used fully) and with inner == 1 a task is
// simply one contiguous row. Pass 1 folds the row into (max, sum) (kernels/softmax_math.h);
// pass 2 writes the outputs. Each row is handled by one task in a fixed order, so results do
// not depend on the thread count.
#include <algorithm>

#include "core/parallel.h"
#include "kernels/softmax.h"
#include "kernels/softmax_math.h"

namespace cvg {

namespace {

constexpr int64_t kCols = 64;

template <typename T>
void softmax_rows(const T* x, T* y, int64_t outer, int64_t D, int64_t inner, bool log) {
  const int64_t chunks = (inner + kCols - 1) / kCols;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, D * std::min(inner, kCols)));
  parallel_for(outer * chunks, grain, [&](int64_t t0, int64_t t1) {
    SoftmaxState<T> st[kCols];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / chunks;
      const int64_t i0 = (t % chunks) * kCols, w = std::min(kCols, inner - i0);
      const T* xb = x + o * D * inner + i0;
      T* yb = y + o * D * inner + i0;
      for (int64_t c = 0; c < w; ++c) st[c] = softmax_init<T>();
      for (int64_t d = 0; d < D; ++d) {
        const T* xr = xb + d * inner;
        for (int64_t c = 0; c < w; ++c) softmax_add(st[c], xr[c]);
      }
      for (int64_t d = 0; d < D; ++d) {
        const T* xr = xb + d * inner;
        T* yr = yb + d * inner;
        if (log) {
          for (int64_t c = 0; c < w; ++c) yr[c] = log_softmax_out(xr[c], st[c]);
        } else {
          for (int64_t c = 0; c < w; ++c) yr[c] = softmax_out(xr[c], st[c]);
        }
      }
    }
  });
}

}  // namespace

void softmax_cpu(const Tensor& x, const Tensor& out, int64_t outer, int64_t D, int64_t inner,
                 bool log) {
  dispatch_floating(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_rows<T>(x.data<T>(), out.data<T>(), outer, D, inner, log);
  });
}

}  // namespace cvg
