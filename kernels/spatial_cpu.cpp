// CPU spatial_softmax / soft_argmax (see kernels/spatial.h): one task per (n, k) plane, which
// reduces the plane in row-major order and then writes its outputs, so the result does not
// depend on the thread count. soft_argmax folds the plane into an online state (in the input
// type, as softmax_cpu.cpp); spatial_softmax takes the max first instead (see below).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"
#include "kernels/softmax_math.h"
#include "kernels/spatial.h"

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
      for (int64_t p = p0; p < p1; ++p) {
        const T* xp = px + p * hw;
        T* yp = py + p * hw;
        // Three passes over the plane (hot in cache): the max (a compare per element), then
        // exp(z - max) written out and summed, then the scaling; one exp per element where the
        // online form needs two. A NaN makes the max NaN and so the plane NaN; an all -inf
        // plane gives exp(nan) = nan, as softmax.
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j < hw; ++j) {
          const T z = xp[j] * inv_t;
          if (z > m || z != z) m = z;  // a NaN, once taken, stays
        }
        double s = 0;
        for (int64_t j = 0; j < hw; ++j) {
          const T e = std::exp(xp[j] * inv_t - m);
          yp[j] = e;
          s += e;
        }
        const T r = static_cast<T>(1.0 / s);
        for (int64_t j = 0; j < hw; ++j) yp[j] *= r;
      }
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
