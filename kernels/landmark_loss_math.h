#pragma once
// Per-element and per-plane math of the fused landmark losses (kernels/landmark_loss.h), shared
// by landmark_loss_cpu.cpp and landmark_loss_cuda.cu so that the CPU tests cover the formulas
// the GPU evaluates. A is the accumulation type (double on the CPU, the input type on CUDA).
#include <cmath>

#include "core/hd.h"

namespace cvg {

// Softmax probability of logit z in a plane with maximum zmax and inv_sum = 1 / sum exp(z - zmax).
template <typename A>
CVG_HD A lm_prob(A z, A zmax, A inv_sum) {
  using std::exp;
  return exp(z - zmax) * inv_sum;
}

// |(dx, dy)|^2: the squared distance of a position from a mean, the summand of the centred
// spread Var_p = sum_u p_u |u - m|^2.
template <typename A>
CVG_HD A lm_sq(A dx, A dy) {
  return dx * dx + dy * dy;
}

// The equivariance loss of one (n, k) plane in centred form: Var_p(u) + Var_p2(G) + |m - m2|^2.
template <typename A>
CVG_HD A lm_equivariance_plane(A var, A var2, A mx, A my, A m2x, A m2y) {
  return var + var2 + lm_sq(mx - m2x, my - m2y);
}

// d loss / d z at one position of one map, before the factor g / (N K):
//     p (|c - m|^2 - Var + 2 (c - m).(m - m_other))
// where c is the position the map places there (u for the first map, G(v) for the second), m
// and Var the map's own mean and centred spread, m_other the other map's mean. This is the
// thesis's p (|c - m_other|^2 - E_p |c - m_other|^2) expanded about m: every term stays of the
// size of the spread, so nothing cancels for a peaked map far from the origin.
template <typename A>
CVG_HD A lm_equivariance_grad(A p, A dx, A dy, A var, A mx, A my, A mox, A moy) {
  return p * (lm_sq(dx, dy) - var + A(2) * (dx * (mx - mox) + dy * (my - moy)));
}

// Whether a cell mass P displaces the current best of its cell, scanning landmarks r = 0, 1, ...:
// strictly larger (ties keep the first landmark), or NaN over a non-NaN best (NaN propagates as
// in amax, and the first NaN then stays).
template <typename A>
CVG_HD bool lm_cell_beats(A mass, A best) {
  return mass > best || (mass != mass && best == best);
}

// d loss / d z of the diversity loss at one position of landmark r's map, before the factor
// -g / N: p (win - W_r), win = 1 when r wins the position's cell, W_r the total mass r holds in
// the cells it wins (the softmax backward of dp = win).
template <typename A>
CVG_HD A lm_diversity_grad(A p, bool win, A won_mass) {
  return p * ((win ? A(1) : A(0)) - won_mass);
}

}  // namespace cvg
