#include "core/accumulate.h"

#include "core/autograd.h"
#include "core/parallel.h"

namespace cvg {

Tensor accumulate_grad(const Tensor& a, const Tensor& b) {
  CVG_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), "accumulate_grad: gradients ",
            a.shape(), " ", dtype_name(a.dtype()), " and ", b.shape(), " ", dtype_name(b.dtype()),
            " differ");
  common_device("accumulate_grad", {a, b});
  const Tensor x = a.contiguous(), y = b.contiguous();
  Tensor out = Tensor::empty(a.shape(), a.options());
  if (out.device().is_cpu()) {
    dispatch_floating(a.dtype(), "accumulate_grad", [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.data<T>();
      const T* py = y.data<T>();
      T* po = out.data<T>();
      parallel_for(out.numel(), 32768, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) po[i] = px[i] + py[i];
      });
    });
  } else {
#ifdef CVG_WITH_CUDA
    add_same_shape_cuda(out, x, y);
#endif
  }
  return record("add", out, {a, b},
                [](const Tensor& g, const Node&) { return TensorList{g, g}; });
}

}  // namespace cvg
