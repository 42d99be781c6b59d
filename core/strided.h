#pragma once
// CPU iteration over N strided operands that share one iteration shape. Operand k's element for
// multi-index (i0..id) is at offset[k] + sum_j i_j * strides[k][j]; a broadcast operand simply
// has stride 0 in the broadcast dims. The linear range [0, numel) is split across threads by
// parallel_for; each chunk decodes its first multi-index once and then steps an odometer, so the
// per-element cost is an increment and a compare.
#include <array>
#include <cstdint>

#include "core/parallel.h"
#include "core/shape.h"

namespace cvg {

template <size_t N>
struct StridedOperands {
  std::array<const int64_t*, N> strides;  // each points at shape.size() strides
  std::array<int64_t, N> offsets{};
};

// fn(const std::array<int64_t, N>& off) is called once per element.
template <size_t N, typename Fn>
void strided_for_each(const Shape& shape, const StridedOperands<N>& ops, Fn&& fn,
                      int64_t grain = 16384) {
  const int nd = static_cast<int>(shape.size());
  const int64_t n = numel_of(shape);
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    int64_t idx[kMaxDims] = {0};
    std::array<int64_t, N> off = ops.offsets;
    int64_t rem = begin;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
      for (size_t k = 0; k < N; ++k) off[k] += idx[d] * ops.strides[k][d];
    }
    for (int64_t i = begin; i < end; ++i) {
      fn(off);
      for (int d = nd - 1; d >= 0; --d) {
        ++idx[d];
        for (size_t k = 0; k < N; ++k) off[k] += ops.strides[k][d];
        if (idx[d] < shape[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= idx[d] * ops.strides[k][d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace cvg
