#pragma once
// Per-element math of softmax and log_softmax, shared by softmax_cpu.cpp, softmax_cuda.cu and
// the loss kernels.
//
// Online (one-pass) normaliser: a row is folded into a running maximum m and a running sum
// s = sum_j exp(x_j - m). When a larger element arrives the sum is rescaled to the new maximum:
//     x > m :  s = s * exp(m - x) + 1,  m = x
//     else  :  s = s + exp(x - m)
// so the row is read once to get both numbers, and no exp overflows. Two partial states
// (m1, s1) and (m2, s2) of disjoint parts of a row merge the same way (softmax_merge), which is
// how CUDA threads combine their slices.
//
// Non-finite inputs follow PyTorch:
//   - a -inf element contributes exp(-inf) = 0 and gets probability 0 (log-prob -inf);
//   - a row that is entirely -inf has s = 0 and m = -inf, so every output is exp(nan) = nan;
//   - +inf makes m = +inf and exp(inf - inf) = nan: softmax([0, inf]) = [0, nan];
//   - a NaN anywhere makes the sum, and so the whole row, NaN.
// The state starts at m = -inf, s = 0 ("nothing seen"); an element or partial with s = 0
// adds nothing, which keeps -inf - (-inf) out of the arithmetic.
#include <cmath>
#include <limits>

#include "core/hd.h"

namespace cvg {

template <typename A>
struct SoftmaxState {
  A m;  // running maximum
  A s;  // sum of exp(x - m) over the elements seen
};

template <typename A>
CVG_HD SoftmaxState<A> softmax_init() {
  return {-std::numeric_limits<A>::infinity(), A(0)};
}

template <typename A>
CVG_HD void softmax_add(SoftmaxState<A>& st, A x) {
  using std::exp;
  if (x > st.m) {
    st.s = st.s * exp(st.m - x) + A(1);
    st.m = x;
  } else if (x != -std::numeric_limits<A>::infinity()) {  // NaN lands here and poisons s
    st.s += exp(x - st.m);
  }
}

template <typename A>
CVG_HD void softmax_merge(SoftmaxState<A>& st, const SoftmaxState<A>& o) {
  using std::exp;
  if (o.m > st.m) {
    st.s = st.s * exp(st.m - o.m) + o.s;
    st.m = o.m;
  } else if (o.s != A(0)) {  // o.s == 0: o saw nothing but -inf
    st.s += o.s * exp(o.m - st.m);
  }
}

// Output of softmax / log_softmax for element x of a row with final state st.
template <typename A>
CVG_HD A softmax_out(A x, const SoftmaxState<A>& st) {
  using std::exp;
  return exp(x - st.m) / st.s;
}
template <typename A>
CVG_HD A log_softmax_out(A x, const SoftmaxState<A>& st) {
  using std::log;
  return x - st.m - log(st.s);
}

}  // namespace cvg
