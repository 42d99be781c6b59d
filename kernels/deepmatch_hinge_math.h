#pragma once
// Deep Matching: the structured hinge loss on Q_0 and its gradient (shared by
// deepmatch_cpu.cpp and deepmatch_cuda.cu; conventions in kernels/deepmatch.h).
#include "kernels/deepmatch_common_math.h"

namespace cvg {

// ---- structured hinge loss ----------------------------------------------------------------
// Per reference point: gt[point] = (gy, gx) offset indices of the ground truth. The point takes
// part when gt lies in [0, K)^2 and its score is finite; then each finite q contributes
//     max(0, 1 - exp(-|q - gt|^2 / (2 sigma^2)) + Q[q] - Q[gt])
// with |q - gt| measured in offset steps. The Gaussian is taken in T's precision: in float64 a
// GPU's exp runs on its few double-precision units, which bounded the loss's kernels there
// (15 % of copy bandwidth on an H100, ncu: SM-bound; bench/results, 2026-11-22_3-dm-profile).
//
// The loss is the mean of the terms over all N H W K^2 scores.
//
// The forward's work items are (point, slice), kDmHingeSlices slices per point (fewer when K^2
// is smaller): item (point, s) takes the terms k = s, s + slices, ... < K^2 in increasing
// order, so neighbouring items read neighbouring scores (coalesced) and the point's ground
// truth is found once per item. The forward is one kernel (DmHingeLoss): a block of
// kDmHingeSlices threads per point, thread s summing slice s in registers; the slices' sums and
// counts of active terms meet in a fixed tree (dm_tree_sum), giving the point's sum and count;
// the last block to finish adds the points' sums the same way and writes the loss. So the
// N H W K^2 terms never reach memory, nor do the slices' sums. It was five kernels (the slices'
// sums written, summed per point twice, summed and scaled): on an H100 the op took 83 us at
// K = 161 where ncu timed the terms' kernel at 63 us, and 26 us at K = 41, with 16x fewer terms
// (bench/results, 2026-11-23_7-final and _8-ncu).
//
// The backward needs no sums, so its items are short (DmHingeGrad): (point, s) for
// s < spans = ceil(K^2 / kDmHingeSpan), writing k = s + u spans (u < kDmHingeSpan). When its
// items were the forward's slices (a hundred scores each at K = 161, one wave of blocks), its
// warps went through their rounds of loads, terms and stores almost in step and waited on the
// loads three quarters of the time (ncu on an H100: 1.2 of 14 warps eligible per cycle, 54 %
// of copy bandwidth), where the elementwise layers, whose blocks come and go, reach 90-98 %.
constexpr int64_t kDmHingeSlices = 256;
constexpr int kDmHingeSpan = 4;

template <typename I>
struct DmHingeGeom {
  I points = 0, k = 1, slices = 1, spans = 1;  // spans = ceil(K^2 / kDmHingeSpan)
  double inv_two_sigma2 = 0.5;
  FastDivOf<I> fk, fspans;  // by k and spans (set with the sizes)
  I near[2] = {1, 1};        // dm_hinge_near of float ([0]) and double ([1]), set with sigma
};

// The Gaussian's reach. Outside the box |q - gt| <= r per axis (|q - gt|^2 >= (r + 1)^2) the
// margin 1 - exp(-x), x = |q - gt|^2 / (2 sigma^2) taken in T, is exactly 1 in T when
// exp(-x) <= 2^-(p + 2), p = T's mantissa bits: below half an ulp of 1 with a factor of 2 to
// spare for a GPU's exp (within 2 ulp), and x only grows with |q - gt|^2 (each step of it
// rounds monotonically). So the terms there skip the exp and keep their bits: at sigma = 2 the
// box is 25 x 25 (float) of the 161 x 161 scores of a point at R = 80. Host only; capped at k
// (then every term takes the exp).
template <typename T>
int64_t dm_hinge_near(double inv_two_sigma2, int64_t k) {
  const double tiny = std::ldexp(1.0, -(std::numeric_limits<T>::digits + 2));
  for (int64_t r = 0; r < k; ++r) {
    const T x = static_cast<T>((r + 1) * (r + 1)) * static_cast<T>(inv_two_sigma2);
    if (std::exp(-static_cast<double>(x)) <= tiny) return r;
  }
  return k;
}

// The hinge term of score v = Q[point, q] (q a flat offset) of a taking-part point, at_gt its
// score at the ground truth gy K + gx (finite).
template <typename T, typename I>
CVG_HD T dm_hinge_term(T v, const DmHingeGeom<I>& g, std::type_identity_t<I> gy,
                       std::type_identity_t<I> gx, std::type_identity_t<I> q, T at_gt) {
  if (!(v > dm_neg_inf<T>())) return T(0);  // -inf (and NaN) scores never take part
  const I qy = g.fk.div(q), iy = qy - gy, ix = q - qy * g.k - gx;
  const I r = g.near[std::is_same_v<T, double> ? 1 : 0];
  T margin = T(1);  // exactly, outside the box (dm_hinge_near)
  if (dm_in(iy + r, 2 * r + 1) && dm_in(ix + r, 2 * r + 1)) {
    const T dy = static_cast<T>(iy), dx = static_cast<T>(ix);
    margin = T(1) - dm_exp(-(dy * dy + dx * dx) * static_cast<T>(g.inv_two_sigma2));
  }
  const T t = margin + v - at_gt;
  return t > T(0) ? t : T(0);
}

// The item's point, slice and ground truth; gt_flat = -1 when the point does not take part.
template <typename I>
struct DmHingeItem {
  I point, slice, gy, gx, gt_flat;
};
template <typename T, typename I>
CVG_HD DmHingeItem<I> dm_hinge_item(const T* q, const int32_t* gt, const DmHingeGeom<I>& g,
                                    I point, I slice) {
  const I gy = gt[2 * point], gx = gt[2 * point + 1];
  I flat = -1;
  if (dm_in(gy, g.k) && dm_in(gx, g.k) && q[point * g.k * g.k + gy * g.k + gx] > dm_neg_inf<T>())
    flat = gy * g.k + gx;
  return {point, slice, gy, gx, flat};
}

// fn(k, plane[k]) for k = first, first + step, ... < end in increasing order (fn must not
// write the plane), the scores loaded kDmHingeIlp at a time, each round's loads issued before
// the previous round's terms, so that a thread always has loads in flight: one load in flight
// per thread left the loss's kernels at 43-52 % of the copy bandwidth on an H100, rounds of 4
// loads each used before the next round's (the backward shared this walk then, and the next
// load could not move above its stores) gained little, rounds of 8 measured the same (72 / 135
// us against 69-83 / 131-132 us for 4).
constexpr int kDmHingeIlp = 4;
template <typename T, typename I, typename Fn>
CVG_HD void dm_hinge_walk(const T* plane, I first, I step, I end, Fn&& fn) {
  constexpr int B = kDmHingeIlp;
  I k = first;
  if (k + (B - 1) * step < end) {
    T v[B];
    CVG_UNROLL
    for (int u = 0; u < B; ++u) v[u] = plane[k + u * step];
    for (;;) {
      const I next = k + B * step;
      const bool more = next + (B - 1) * step < end;
      T w[B] = {};
      if (more) {
        CVG_UNROLL
        for (int u = 0; u < B; ++u) w[u] = plane[next + u * step];
      }
      CVG_UNROLL
      for (int u = 0; u < B; ++u) fn(k + u * step, v[u]);
      k = next;
      if (!more) break;
      CVG_UNROLL
      for (int u = 0; u < B; ++u) v[u] = w[u];
    }
  }
  for (; k < end; k += step) fn(k, plane[k]);
}

// Forward (one block of kDmHingeSlices threads per point; deepmatch_cuda.cu's hinge_loss_kernel,
// deepmatch_cpu.cpp's run_cpu do the same steps): slice() per thread, the trees per point, the
// point's sum (loss.block_sum) and count of active terms, then loss's total: the mean.
template <typename T>
struct DmHingeSums {
  T sum, active;  // the terms added in increasing k, how many are positive
};
template <typename T, typename I>
struct DmHingeLoss {
  const T* q;
  const int32_t* gt;
  DmHingeGeom<I> g;
  DmGridSum<T, I> loss;  // blocks: the points; scale 1 / (N H W K^2)
  T* active;             // per point: its number of positive terms (the backward's coefficients)

  // Thread s of point's block: its slice (zeros from a point that does not take part, and
  // from threads past the point's slices, which leave the tree's sums unchanged).
  CVG_HD DmHingeSums<T> slice(I point, I s) const {
    T acc = T(0), cnt = T(0);
    if (s >= g.slices) return {acc, cnt};
    const DmHingeItem<I> it = dm_hinge_item(q, gt, g, point, s);
    if (it.gt_flat < 0) return {acc, cnt};
    const T* plane = q + point * g.k * g.k;
    const T at_gt = plane[it.gt_flat];
    dm_hinge_walk(plane, s, g.slices, g.k * g.k, [&](I k, T v) {
      const T t = dm_hinge_term(v, g, it.gy, it.gx, k, at_gt);
      acc += t;
      cnt += t > T(0) ? T(1) : T(0);
    });
    return {acc, cnt};
  }
};
static_assert(kDmHingeSlices == kDmGridBlock, "a hinge loss block is a grid-sum block");

// Backward: d loss / d Q[point, q] = (+1 for an active term's q, minus the point's number of
// active terms at the ground truth, whose own term is 0, never active) x grad / (N H W K^2),
// grad being the loss's gradient (grad null: the coefficient alone, for the differentiable
// composition create_graph needs, which multiplies by grad x (1 / terms) in T as here).
template <typename T, typename I>
struct DmHingeGrad {
  const T* q;
  const int32_t* gt;
  const T* active_count;  // per point
  const T* grad;          // one value, or null
  double inv_terms;       // 1 / (N H W K^2)
  DmHingeGeom<I> g;
  T* out;  // like q
  // Item l = point * spans + s: the scores first, then what the point's terms need.
  CVG_HD void operator()(I l) const {
    const I point = g.fspans.div(l), s = l - point * g.spans, kk = g.k * g.k;
    const T* plane = q + point * kk;
    T* o = out + point * kk;
    T v[kDmHingeSpan] = {};
    CVG_UNROLL
    for (int u = 0; u < kDmHingeSpan; ++u)
      if (s + u * g.spans < kk) v[u] = plane[s + u * g.spans];
    const DmHingeItem<I> it = dm_hinge_item(q, gt, g, point, s);
    const bool part = it.gt_flat >= 0;
    const T at_gt = part ? plane[it.gt_flat] : T(0);
    const T gp = grad ? grad[0] * static_cast<T>(inv_terms) : T(1);
    const T at_gt_coef = part ? -active_count[point] : T(0);
    CVG_UNROLL
    for (int u = 0; u < kDmHingeSpan; ++u) {
      const I k = s + u * g.spans;
      if (k >= kk) continue;
      T c = T(0);
      if (part)
        c = k == it.gt_flat ? at_gt_coef
                            : (dm_hinge_term(v[u], g, it.gy, it.gx, k, at_gt) > T(0) ? T(1) : T(0));
      o[k] = grad ? c * gp : c;
    }
  }
};

}  // namespace cvg
