#pragma once
// Index math and per-element formulas of the normalisation ops (kernels/norm.h), shared by
// norm_cpu.cpp and norm_cuda.cu.
//
// Every normalisation reads a contiguous x as [A, B, D] and normalises "groups" of it:
//   reduce_outer = true  : group b holds the A * D elements x[:, b, :]   (batch_norm: A = N,
//                          B = C, D = spatial size)
//   reduce_outer = false : group (a, b) holds the D elements x[a, b, :]  (instance_norm: A = N,
//                          B = C; layer_norm: A = rows, B = 1, D = normalized numel)
// A group is a set of `reps` rows of D contiguous elements; row r of group g starts at
// row_offset(g, r). The affine weight and bias are indexed by channel b (weight_on_d = false)
// or by the position d inside a row (weight_on_d = true, layer_norm).
#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace cvg {

struct NormGeom {
  int64_t A = 1, B = 1, D = 1;
  bool reduce_outer = false;
  bool weight_on_d = false;

  CVG_HD int64_t groups() const { return reduce_outer ? B : A * B; }
  CVG_HD int64_t reps() const { return reduce_outer ? A : 1; }
  CVG_HD int64_t count() const { return reps() * D; }  // elements per group
  CVG_HD int64_t row_offset(int64_t g, int64_t r) const {
    return reduce_outer ? (r * B + g) * D : g * D;
  }
  // Channel of group g (weight index when !weight_on_d).
  CVG_HD int64_t channel(int64_t g) const { return reduce_outer ? g : g % B; }
};

// 1 / sqrt(var + eps): the scale that turns x - mean into xhat.
template <typename A>
CVG_HD A norm_invstd(A var, A eps) {
  using std::sqrt;
  return A(1) / sqrt(var + eps);
}

// Count, mean and sum of squared deviations (m2) of a set of values: the CUDA split path computes
// them per chunk of a group (two passes over the chunk), then merges the chunks in order:
//   n = na + nb,  mean = ma + (mb - ma) nb / n,  m2 = m2a + m2b + (mb - ma)^2 na nb / n
// (Chan, Golub and LeVeque's pairwise update). Exact in real arithmetic; in floating point it
// keeps the two-pass accuracy, no cancellation when |mean| >> std. Empty sets merge as no-ops.
template <typename A>
struct NormMoments {
  A n, mean, m2;
};
template <typename A>
CVG_HD NormMoments<A> norm_merge(NormMoments<A> a, NormMoments<A> b) {
  const A n = a.n + b.n;
  if (b.n == A(0)) return a;
  const A delta = b.mean - a.mean, share = b.n / n;
  return {n, a.mean + delta * share, a.m2 + b.m2 + delta * delta * a.n * share};
}

// batch_norm's running statistics after a training-mode batch (PyTorch's convention), with
// momentum m and the batch's biased variance var over n values per channel:
//   running_mean = (1 - m) running_mean + m mean,
//   running_var  = (1 - m) running_var + m n / (n - 1) var.
// keep = 1 - m and m_unbiased = m n / (n - 1) come from the host (computed once, in double).
template <typename A>
CVG_HD void norm_running_update(A& running_mean, A& running_var, A mean, A var, A keep, A m,
                                A m_unbiased) {
  running_mean = running_mean * keep + mean * m;
  running_var = running_var * keep + var * m_unbiased;
}

// y = a * x + shift with a = w * invstd, shift = b - mean * a: the normalisation and the
// affine of a group with a per-channel weight, folded into one multiply-add per element.
template <typename A>
struct NormCoef {
  A a, shift;
};
template <typename A>
CVG_HD NormCoef<A> norm_forward_coef(A mean, A invstd, A w, A b) {
  return {w * invstd, b - mean * w * invstd};
}

// Training-mode backward of y = xhat * w + b. With the group means (over its n elements) of
// gy = dy * w and of gy * xhat,
//   dx = invstd * (gy - mean(gy) - xhat * mean(gy * xhat))
// (the derivative of xhat through the group's mean and variance, folded into two sums), which
// with xhat = (x - mean) * invstd is  dx = ka * gy + kb * x + kc:
template <typename A>
struct NormBackwardCoef {
  A ka, kb, kc;
};
template <typename A>
CVG_HD NormBackwardCoef<A> norm_backward_coef(A mean, A invstd, A mean_gy, A mean_gy_xhat) {
  return {invstd, -invstd * invstd * mean_gy_xhat,
          invstd * (mean * invstd * mean_gy_xhat - mean_gy)};
}

}  // namespace cvg
