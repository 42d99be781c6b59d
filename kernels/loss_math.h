#pragma once
// Per-row math of the fused softmax cross-entropy (cross_entropy on [N, C] logits with class
// indices), shared by loss_cpu.cpp and loss_cuda.cu. With the row's online softmax state st
// (kernels/softmax_math.h: max m, sum s of exp(x - m)) and the target's class weight w:
//     loss        = w * (log sum_c exp(x_c) - x_t) = w * (m + log s - x_t)
//     dloss/dx_c  = w * (softmax(x)_c - [c == t])
// Both are written in one pass over the row after the state is known (llm.c style), so the
// backward pass is a single multiply by the incoming gradient.
#include "kernels/softmax_math.h"

namespace cvg {

template <typename T>
CVG_HD T cross_entropy_row_loss(T x_target, const SoftmaxState<T>& st, T w) {
  using std::log;
  return w * (st.m + log(st.s) - x_target);
}

template <typename T>
CVG_HD T cross_entropy_dlogit(T x, const SoftmaxState<T>& st, bool is_target, T w) {
  return w * (softmax_out(x, st) - (is_target ? T(1) : T(0)));
}

}  // namespace cvg
