#pragma once
// Combine rules of the row reductions, shared by reduce_cpu.cpp and reduce_cuda.cu.
// Accumulator type: double for float inputs on the CPU sum path is chosen by the caller;
// max/min propagate NaN (a NaN anywhere in the row makes the result NaN).
#include <cmath>
#include <limits>

#include "core/hd.h"
#include "kernels/reduce.h"

namespace cvg {

template <ReduceKind K, typename A>
CVG_HD A reduce_identity() {
  if constexpr (K == ReduceKind::sum) return A(0);
  else if constexpr (K == ReduceKind::max) return -std::numeric_limits<A>::infinity();
  else return std::numeric_limits<A>::infinity();
}

template <ReduceKind K, typename A>
CVG_HD A reduce_combine(A acc, A v) {
  if constexpr (K == ReduceKind::sum) return acc + v;
  else if constexpr (K == ReduceKind::max) return (v != v || v > acc) ? v : acc;
  else return (v != v || v < acc) ? v : acc;
}

}  // namespace cvg
