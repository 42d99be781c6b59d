// CPU loops for the binary ops and where(). Inputs are already of the compute dtype. When both
// inputs are dense with the output's shape the loop is a plain indexed loop (vectorisable);
// otherwise the strided iterator walks the broadcast views.
#include "core/strided.h"
#include "kernels/binary.h"

namespace cvg {

void binary_cpu(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const Shape& shape = out.shape();
  const Shape sa = broadcast_strides(a, shape, "binary"), sb = broadcast_strides(b, shape, "binary");
  const bool dense = a.shape() == shape && b.shape() == shape && a.is_contiguous() &&
                     b.is_contiguous();
  dispatch_binary(op, [&](auto opc) {
    constexpr BinaryOp OP = decltype(opc)::value;
    dispatch_dtype(a.dtype(), "binary", [&](auto tag) {
      using T = decltype(tag);
      using R = decltype(binary_eval<OP, T>(T{}, T{}));
      const T* pa = static_cast<const T*>(a.storage()->data());
      const T* pb = static_cast<const T*>(b.storage()->data());
      R* po = out.data<R>();
      if (dense) {
        pa += a.offset();
        pb += b.offset();
        parallel_for(out.numel(), 32768, [&](int64_t s, int64_t e) {
          for (int64_t i = s; i < e; ++i) po[i] = binary_eval<OP, T>(pa[i], pb[i]);
        });
        return;
      }
      const Shape so = contiguous_strides(shape);
      StridedOperands<3> ops{{so.data(), sa.data(), sb.data()}, {0, a.offset(), b.offset()}};
      strided_for_each<3>(shape, ops, [&](const std::array<int64_t, 3>& o) {
        po[o[0]] = binary_eval<OP, T>(pa[o[1]], pb[o[2]]);
      });
    });
  });
}

void where_cpu(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  const Shape& shape = out.shape();
  const Shape sc = broadcast_strides(cond, shape, "where");
  const Shape sa = broadcast_strides(a, shape, "where"), sb = broadcast_strides(b, shape, "where");
  const Shape so = contiguous_strides(shape);
  const bool* pc = static_cast<const bool*>(cond.storage()->data());
  dispatch_dtype(out.dtype(), "where", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(a.storage()->data());
    const T* pb = static_cast<const T*>(b.storage()->data());
    T* po = out.data<T>();
    StridedOperands<4> ops{{so.data(), sc.data(), sa.data(), sb.data()},
                           {0, cond.offset(), a.offset(), b.offset()}};
    strided_for_each<4>(shape, ops, [&](const std::array<int64_t, 4>& o) {
      po[o[0]] = pc[o[1]] ? pa[o[2]] : pb[o[3]];
    });
  });
}

}  // namespace cvg
