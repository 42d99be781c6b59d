// CPU dropout: one Philox draw per element (kernels/dropout.h), split across threads by
// parallel_for; each element's draw depends only on its index, so the mask does not depend on
// the thread count.
#include "core/parallel.h"
#include "kernels/dropout.h"

namespace cvg {

void dropout_cpu(const Tensor& x, const Tensor& out, uint64_t seed, uint64_t offset, double p,
                 double scale) {
  dispatch_floating(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = out.data<T>();
    const T s = static_cast<T>(scale);
    parallel_for(x.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        py[i] = dropout_keep(seed, offset, static_cast<uint64_t>(i), p) ? px[i] * s : T(0);
    });
  });
}

}  // namespace cvg
