// CPU spatial_softmax / soft_argmax (see kernels/spatial.h): one task per (n, k) plane, which
// reduces the plane in a fixed order and then writes its outputs, so the result does not
// depend on the thread count. soft_argmax folds the plane into an online state (in the input
// type, as softmax_cpu.cpp); spatial_softmax takes the max first instead and uses a
// vectorisable exp (softmax_plane below).
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/parallel.h"
#include "kernels/softmax_math.h"
#include "kernels/spatial.h"
#include "kernels/spatial_math.h"

namespace cvg {

namespace {

int64_t plane_grain(int64_t hw) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, hw)); }

template <typename T>
ArgmaxState<T> plane_state(const T* xp, int64_t H, int64_t W, bool normalized, T inv_t) {
  ArgmaxState<T> st = argmax_state_init<T>();
  for (int64_t i = 0; i < H; ++i) {
    const T uy = spatial_coord<T>(i, H, normalized);
    for (int64_t j = 0; j < W; ++j)
      argmax_state_add(st, xp[i * W + j] * inv_t, spatial_coord<T>(j, W, normalized), uy);
  }
  return st;
}

// The sum below keeps kLanes independent partial results (lane l takes elements l, l + kLanes,
// ...), which the compiler maps onto vector registers, and combine them in a fixed order at the
// end: a plain running sum is a serial dependency that the compiler may not reorder (no
// -ffast-math). The order depends only on the plane's size, never on the thread count.
constexpr int64_t kLanes = 8;

// The max of z = x * inv_t over a plane, and whether the plane holds a NaN or an infinity
// (then z * 0 is NaN, which poisons `bad`). Neither result depends on the order in which the
// elements are combined (0 + 0 is exactly 0), so an OpenMP simd reduction may reorder freely.
template <typename T>
std::pair<T, bool> plane_max(const T* xp, int64_t hw, T inv_t) {
  T m = -std::numeric_limits<T>::infinity(), bad = 0;
#pragma omp simd reduction(max : m) reduction(+ : bad)
  for (int64_t j = 0; j < hw; ++j) {
    const T z = xp[j] * inv_t;
    m = std::max(m, z);
    bad += z * T(0);
  }
  return {m, bad != bad};
}

// Softmax of one plane: three passes over it (hot in cache): the max, exp(z - max) written out
// and summed, the scaling. exp_nonpositive (spatial_math.h) vectorises where std::exp does not.
// A plane with a NaN or an infinity takes the scalar path with std::exp, which gives PyTorch's
// answers: NaN anywhere -> NaN plane, all -inf -> NaN plane (exp(-inf - -inf)), +inf -> NaN
// plane (exp(inf - inf) in the sum); -inf elements of an otherwise finite plane get 0.
template <typename T>
void softmax_plane(const T* xp, T* yp, int64_t hw, T inv_t) {
  const auto [m, nonfinite] = plane_max(xp, hw, inv_t);
  T s = 0;
  if (nonfinite) {
    T mm = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < hw; ++j) {
      const T z = xp[j] * inv_t;
      if (z > mm || z != z) mm = z;  // a NaN, once taken, stays
    }
    for (int64_t j = 0; j < hw; ++j) s += (yp[j] = std::exp(xp[j] * inv_t - mm));
  } else {
    T acc[kLanes] = {};
    const int64_t full = hw - hw % kLanes;
    for (int64_t j = 0; j < full; j += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += (yp[j + l] = exp_nonpositive(xp[j + l] * inv_t - m));
    for (int64_t j = full; j < hw; ++j) acc[0] += (yp[j] = exp_nonpositive(xp[j] * inv_t - m));
    for (int64_t l = 0; l < kLanes; ++l) s += acc[l];
  }
  const T r = T(1) / s;
  for (int64_t j = 0; j < hw; ++j) yp[j] *= r;
}

}  // namespace

void spatial_softmax_cpu(const Tensor& x, const Tensor& out, int64_t planes, int64_t H, int64_t W,
                         double temperature) {
  dispatch_floating(x.dtype(), "spatial_softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = out.data<T>();
    const int64_t hw = H * W;
    const T inv_t = static_cast<T>(1.0 / temperature);
    parallel_for(planes, plane_grain(hw), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) softmax_plane(px + p * hw, py + p * hw, hw, inv_t);
    });
  });
}

void soft_argmax_cpu(const Tensor& x, const Tensor& out, int64_t planes, int64_t H, int64_t W,
                     bool normalized, double temperature) {
  dispatch_floating(x.dtype(), "soft_argmax", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const T inv_t = static_cast<T>(1.0 / temperature);
    parallel_for(planes, plane_grain(H * W), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const ArgmaxState<T> st = plane_state(px + p * H * W, H, W, normalized, inv_t);
        po[2 * p] = st.sx / st.s;
        po[2 * p + 1] = st.sy / st.s;
      }
    });
  });
}

void soft_argmax_backward_cpu(const Tensor& x, const Tensor& out, const Tensor& g,
                              const Tensor& dx, int64_t planes, int64_t H, int64_t W,
                              bool normalized, double temperature) {
  dispatch_floating(x.dtype(), "soft_argmax backward", [&](auto tag) {
    using T = decltype(tag);
    const T *px = x.data<T>(), *po = out.data<T>(), *pg = g.data<T>();
    T* pd = dx.data<T>();
    const T inv_t = static_cast<T>(1.0 / temperature);
    parallel_for(planes, plane_grain(H * W), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T* xp = px + p * H * W;
        T* dp = pd + p * H * W;
        SoftmaxState<T> st = softmax_init<T>();
        for (int64_t j = 0; j < H * W; ++j) softmax_add(st, xp[j] * inv_t);
        const T ox = po[2 * p], oy = po[2 * p + 1], gx = pg[2 * p] * inv_t, gy = pg[2 * p + 1] * inv_t;
        for (int64_t i = 0; i < H; ++i) {
          const T ty = (spatial_coord<T>(i, H, normalized) - oy) * gy;
          for (int64_t j = 0; j < W; ++j) {
            const T prob = softmax_out(xp[i * W + j] * inv_t, st);
            dp[i * W + j] = prob * ((spatial_coord<T>(j, W, normalized) - ox) * gx + ty);
          }
        }
      }
    });
  });
}

}  // namespace cvg
