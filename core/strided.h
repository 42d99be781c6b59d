#pragma once
// CPU iteration over N strided operands that share one iteration shape. Operand k's element for
// multi-index (i0..id) is at offset[k] + sum_j i_j * strides[k][j]; a broadcast operand simply
// has stride 0 in the broadcast dims. The linear range [0, numel) is split across threads by
// parallel_for; each chunk decodes its first multi-index once, then walks runs of the innermost
// (coalesced) dimension, stepping an odometer over the outer dimensions between runs.
#include <algorithm>
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

// The iteration space with its dimensions coalesced: size-1 dimensions dropped, and a dimension
// merged into the one outside it wherever every operand steps across the pair as across one
// dimension (outer stride = inner stride x inner size). A dense or scalar-broadcast operation then
// becomes one long dimension, whose elements the loop below visits with one add per operand.
template <size_t N>
struct CoalescedDims {
  int nd = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};

  CoalescedDims(const Shape& shape, const StridedOperands<N>& ops) {
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      bool merge = nd > 0;
      for (size_t k = 0; k < N && merge; ++k)
        merge = stride[k][nd - 1] == ops.strides[k][d] * shape[d];
      if (!merge) ++nd;
      size[nd - 1] = merge ? size[nd - 1] * shape[d] : shape[d];
      for (size_t k = 0; k < N; ++k) stride[k][nd - 1] = ops.strides[k][d];
    }
    if (nd == 0) size[nd++] = 1;  // a scalar, or only size-1 dimensions: one element
  }
};

// fn(const std::array<int64_t, N>& off) is called once per element. Elements are visited in
// row-major order within each thread's chunk of the linear range (chunks run in parallel).
template <size_t N, typename Fn>
void strided_for_each(const Shape& shape, const StridedOperands<N>& ops, Fn&& fn,
                      int64_t grain = 16384) {
  const CoalescedDims<N> c(shape, ops);
  const int last = c.nd - 1;
  const int64_t inner = c.size[last];
  parallel_for(numel_of(shape), grain, [&](int64_t begin, int64_t end) {
    int64_t idx[kMaxDims] = {0};
    std::array<int64_t, N> off = ops.offsets;
    int64_t rem = begin;
    for (int d = last; d >= 0; --d) {
      idx[d] = rem % c.size[d];
      rem /= c.size[d];
      for (size_t k = 0; k < N; ++k) off[k] += idx[d] * c.stride[k][d];
    }
    for (int64_t i = begin; i < end;) {
      // A run along the innermost dimension, then the odometer over the outer ones.
      const int64_t run = std::min(end - i, inner - idx[last]);
      for (int64_t j = 0; j < run; ++j) {
        fn(off);
        for (size_t k = 0; k < N; ++k) off[k] += c.stride[k][last];
      }
      i += run;
      idx[last] += run;
      if (idx[last] < inner) break;  // only when the chunk ended mid-run
      for (size_t k = 0; k < N; ++k) off[k] -= inner * c.stride[k][last];
      idx[last] = 0;
      for (int d = last - 1; d >= 0; --d) {
        ++idx[d];
        for (size_t k = 0; k < N; ++k) off[k] += c.stride[k][d];
        if (idx[d] < c.size[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= idx[d] * c.stride[k][d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace cvg
