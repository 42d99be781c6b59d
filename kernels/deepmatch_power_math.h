#pragma once
// Deep Matching: the power layer A^nu with its learnable exponent, forward and one-pass
// backward (shared by deepmatch_cpu.cpp and deepmatch_cuda.cu; conventions in
// kernels/deepmatch.h).
#include "kernels/deepmatch_common_math.h"

namespace cvg {

// ---- power --------------------------------------------------------------------------------
// Item l computes the elements l + u * quarter (u < kDmPowerSpan, those below n), loading all of
// them before the first store: a GPU thread then has kDmPowerSpan loads in flight instead of one
// (ilp_loop in core/cuda_launch.cuh says why that matters), and neighbouring items still read
// neighbouring elements. Items: quarter = ceil(n / kDmPowerSpan).
constexpr int kDmPowerSpan = 4;
template <typename T, typename I>
struct DmPowerForward {
  const T* a;
  const T* nu;  // one element
  T* out;
  I n, quarter;
  CVG_HD void operator()(I l) const {
    T v[kDmPowerSpan] = {};  // (GCC cannot see that the two guards agree)
    CVG_UNROLL
    for (int u = 0; u < kDmPowerSpan; ++u)
      if (l + u * quarter < n) v[u] = a[l + u * quarter];
    const T p = nu[0];
    CVG_UNROLL
    for (int u = 0; u < kDmPowerSpan; ++u)
      if (l + u * quarter < n) out[l + u * quarter] = dm_pow(v[u], p);
  }
};

// dm_power's backward in one pass, for when no graph is built of it (kernels/deepmatch.cpp):
// da = g (A^(nu - 1) nu), and the terms (g y) ln A whose sum is d nu, with y = A^nu recomputed
// (the forward's own expression: the bits of its output) and ln A taken of 1 where A <= 0: the
// expressions of the differentiable composition used with create_graph, in its order. Item l
// takes the elements l + m items (m < kDmPowerRun, below n: neighbouring items read
// neighbouring elements), loads them all before its first store, and adds its terms in
// registers. The items' sums meet in a DmGridSum (blocks of kDmGridBlock items): the backward
// reads A and g and writes dA and one value per block, nothing more (a terms tensor and y would
// add two thirds to that; the items' sums, one per 16 elements written and read back by a
// reduction op, added half a byte per element to the 12 counted, and one or two kernels).
// Either output may be null (not wanted).
constexpr int kDmPowerRun = 16;
template <typename T, typename I>
struct DmPowerBackward {
  const T* grad;
  const T* a;
  const T* nu;  // one element
  T* da;
  DmGridSum<T, I> dnu;  // its `total` null: d nu not wanted
  I n, items;
  // Item l: writes its elements of da, returns the sum of its terms of d nu.
  CVG_HD T item(I l) const {
    T av[kDmPowerRun] = {}, gv[kDmPowerRun] = {};
    CVG_UNROLL
    for (int m = 0; m < kDmPowerRun; ++m)
      if (l + m * items < n) {
        av[m] = a[l + m * items];
        gv[m] = grad[l + m * items];
      }
    const T p = nu[0];
    T acc = T(0);
    CVG_UNROLL
    for (int m = 0; m < kDmPowerRun; ++m) {
      if (l + m * items >= n) continue;
      // ln A once (0 = ln 1 where A <= 0) for both powers and the log term, as dm_pow takes
      // it: a host compiler must call log three times otherwise (it may set errno).
      const bool pos = av[m] > T(0);
      const T la = dm_log(pos ? av[m] : T(1));
      if (da) da[l + m * items] = gv[m] * ((pos ? dm_exp((p - T(1)) * la) : T(0)) * p);
      if (dnu.total) acc += (gv[m] * (pos ? dm_exp(p * la) : T(0))) * la;
    }
    return acc;
  }
};

}  // namespace cvg
