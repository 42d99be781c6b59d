// CPU loop for the unary ops: x and out are contiguous; one pass, split across threads.
#include "core/parallel.h"
#include "kernels/unary.h"

namespace cvg {

void unary_cpu(UnaryOp op, const Tensor& x, const Tensor& out, const UnaryParams& p) {
  dispatch_unary(op, [&](auto opc) {
    constexpr UnaryOp OP = decltype(opc)::value;
    dispatch_dtype(x.dtype(), "unary", [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool> ||
                    (!std::is_floating_point_v<T> && !unary_int_ok(OP))) {
        fail("unary op: not defined for ", dtype_name(x.dtype()), " tensors");
      } else {
        const T* px = x.data<T>();
        T* po = out.data<T>();
        parallel_for(x.numel(), 32768, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) po[i] = unary_eval<OP, T>(px[i], p);
        });
      }
    });
  });
}

}  // namespace cvg
