#pragma once
// What the Deep Matching layers' per-element math shares (kernels/deepmatch_math.h lists the
// layers' headers): index helpers, the first-maximum rule, exp / log / pow in T's precision and
// the fixed-order grid sum. Conventions in kernels/deepmatch.h.
//
// Score tensors are contiguous N x H x W x K x K. "point" is the flat reference index
// (n * H + i) * W + j, and element l of a score tensor is point * K * K + ky * K + kx.
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/fast_div.h"
#include "core/hd.h"

namespace cvg {

// Index type I: int32_t when every tensor of the launch holds fewer than 2^31 elements, else
// int64_t (kernels/deepmatch.cpp picks it; core/fast_div.h says why 32 bits matter on a GPU).
// Every flat index, size and intermediate of the functors below is an I.

// Floor and ceiling of a / b for any sign of a (b >= 1).
template <typename I>
CVG_HD I dm_floor_div(std::type_identity_t<I> a, const FastDivOf<I>& b) {
  return a >= 0 ? b.div(a) : -b.div(-a + b.divisor() - 1);
}
template <typename I>
CVG_HD I dm_ceil_div(std::type_identity_t<I> a, const FastDivOf<I>& b) {
  return -dm_floor_div<I>(-a, b);
}

template <typename I>
CVG_HD bool dm_in(I v, std::type_identity_t<I> n) {
  return v >= 0 && v < n;
}
template <typename I>
CVG_HD I dm_clamp(std::type_identity_t<I> v, std::type_identity_t<I> lo,
                  std::type_identity_t<I> hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

// Element l of an N x H x W x K x K score tensor as (point, k) with k = ky K + kx, and a point
// as (n, i, j). Every kernel decodes its flat index through FastDivs made once per launch
// (kernels/deepmatch.cpp), not through divisions (see core/fast_div.h for why).
template <typename I>
struct DmPlaneIndex {
  I point, k;
};
template <typename I>
CVG_HD DmPlaneIndex<I> dm_split(std::type_identity_t<I> l, const FastDivOf<I>& kk) {
  const I point = kk.div(l);
  return {point, l - point * kk.divisor()};
}
template <typename I>
struct DmGridIndex {
  I n, i, j;
};
template <typename I>
CVG_HD DmGridIndex<I> dm_grid(std::type_identity_t<I> point, const FastDivOf<I>& h,
                              const FastDivOf<I>& w) {
  const I row = w.div(point), n = h.div(row);
  return {n, row - n * h.divisor(), point - row * w.divisor()};
}

template <typename T>
CVG_HD T dm_neg_inf() {
  return -static_cast<T>(INFINITY);
}

// A beats the running best: strictly larger, or the first NaN (written without isnan so that
// host and device share the line). The first maximum wins ties.
template <typename T>
CVG_HD bool dm_beats(T v, T best) {
  return v > best || (v != v && best == best);
}

// ---- exp, log and pow in T's precision --------------------------------------------------
template <typename T>
CVG_HD T dm_exp(T x);
template <>
CVG_HD float dm_exp<float>(float x) {
  return expf(x);
}
template <>
CVG_HD double dm_exp<double>(double x) {
  return ::exp(x);
}

template <typename T>
CVG_HD T dm_log(T x);
template <>
CVG_HD float dm_log<float>(float x) {
  return logf(x);
}
template <>
CVG_HD double dm_log<double>(double x) {
  return ::log(x);
}

// y = A^nu = exp(nu ln A) for A > 0, and 0 for A <= 0 (the limit at 0 for nu > 0).
template <typename T>
CVG_HD T dm_pow(T a, T nu) {
  return a > T(0) ? dm_exp(nu * dm_log(a)) : T(0);
}

// ---- sums over a grid of blocks, in one fixed order on both devices -------------------------
// v[0] = the sum of v[0 .. n), n a power of two, added in a fixed tree: for h = n / 2, n / 4,
// ..., 1 each v[t] += v[t + h], t < h. A CUDA block does the same steps between barriers (one
// thread per t), so the two devices add in one order.
template <typename T>
void dm_tree_sum(T* v, int n) {
  for (int h = n / 2; h > 0; h /= 2)
    for (int t = 0; t < h; ++t) v[t] += v[t + h];
}

// A sum of one value per work item in one kernel (DmHingeLoss, DmPowerBackward): block b of
// kDmGridBlock items adds their values in a tree (dm_tree_sum), writes block_sum[b], and the
// last block to finish (deepmatch_cuda.cu) adds the blocks' sums: thread t takes block_sum[t],
// block_sum[t + kDmGridBlock], ... in increasing order (part()), and the threads' parts meet in a
// tree again; total = that sum times `scale`. The CPU (deepmatch_cpu.cpp) takes the same steps.
// So no partial sums are written per item, nor summed by separate reduction kernels.
constexpr int kDmGridBlock = 256;
template <typename T, typename I>
struct DmGridSum {
  T* block_sum = nullptr;  // one per block
  T* total = nullptr;      // one value
  I blocks = 0;
  double scale = 1.0;
  // load(ptr) reads a block's sum: past the L1 on a GPU, where other blocks wrote it.
  template <typename Load>
  CVG_HD T part(int t, Load&& load) const {
    T acc = T(0);
    for (I b = static_cast<I>(t); b < blocks; b += static_cast<I>(kDmGridBlock))
      acc += load(block_sum + b);
    return acc;
  }
  CVG_HD T finish(T sum) const { return sum * static_cast<T>(scale); }
};

}  // namespace cvg
