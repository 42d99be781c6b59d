#pragma once
// Spatial softmax and soft-argmax over the H x W planes of an N x K x H x W tensor (keypoint
// heads, "Deep Spatial Autoencoders", Finn et al. 2016).
//
//   spatial_softmax(x, T) : for each (n, k) plane, softmax over its H * W positions of x / T,
//                           max-shifted (no overflow for large logits).
//   soft_argmax(x, units, T) -> N x K x 2 : the expected position (x, y) under
//                           p = spatial_softmax(x, T):  (sum p u_x, sum p u_y).
//     CoordUnits::Pixels     : pixel (row i, column j) sits at (u_x, u_y) = (j, i).
//     CoordUnits::Normalized : u_x = (2 j + 1) / W - 1, u_y = (2 i + 1) / H - 1, the pixel
//                              centres in [-1, 1] (grid_sample's align_corners=false).
// temperature T must be positive and finite; x floating point, exactly 4-D.
//
// Gradients (w.r.t. x), per plane:
//   spatial_softmax : dx = p * (g - sum(g * p)) / T                 (differentiable ops)
//   soft_argmax     : dx = p * <u - u*, g> / T, u* the output        (a per-plane kernel when
//                     the backward runs without create_graph; under create_graph the same
//                     formula in differentiable ops, so second derivatives work)
// Statistics: an online state per plane (max, sum of exp, and for soft_argmax the exp-weighted
// sums of u_x and u_y; kernels/softmax_math.h's normaliser for spatial_softmax) absorbs an
// element in one step and merges with another state, so CUDA threads each fold a slice and
// merge. The CPU spatial_softmax takes the plane's max first instead (one exp per element).
// CPU: spatial_cpu.cpp (one task per plane). CUDA: spatial_cuda.cu (one block per plane,
// warp-shuffle merges).
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/hd.h"
#include "core/tensor.h"

namespace cvg {

enum class CoordUnits { Pixels, Normalized };

Tensor spatial_softmax(const Tensor& x, double temperature = 1.0);
Tensor soft_argmax(const Tensor& x, CoordUnits units = CoordUnits::Pixels, double temperature = 1.0);

// Coordinate of pixel index i along an axis of `size` pixels.
template <typename A>
CVG_HD A spatial_coord(int64_t i, int64_t size, bool normalized) {
  return normalized ? A(2 * i + 1) / A(size) - A(1) : A(i);
}

// Online state of soft_argmax: maximum m of z = x / T, s = sum exp(z - m), and the sums of
// exp(z - m) * u_x and exp(z - m) * u_y. -inf elements add nothing (probability 0), as in
// softmax_math.h; NaN poisons the plane.
template <typename A>
struct ArgmaxState {
  A m, s, sx, sy;
};

template <typename A>
CVG_HD ArgmaxState<A> argmax_state_init() {
  return {-std::numeric_limits<A>::infinity(), A(0), A(0), A(0)};
}

template <typename A>
CVG_HD void argmax_state_add(ArgmaxState<A>& st, A z, A ux, A uy) {
  using std::exp;
  if (z > st.m) {
    const A r = exp(st.m - z);
    st.s = st.s * r + A(1);
    st.sx = st.sx * r + ux;
    st.sy = st.sy * r + uy;
    st.m = z;
  } else if (z != -std::numeric_limits<A>::infinity()) {
    const A e = exp(z - st.m);
    st.s += e;
    st.sx += e * ux;
    st.sy += e * uy;
  }
}

template <typename A>
CVG_HD void argmax_state_merge(ArgmaxState<A>& st, const ArgmaxState<A>& o) {
  using std::exp;
  if (o.m > st.m) {
    const A r = exp(st.m - o.m);
    st.s = st.s * r + o.s;
    st.sx = st.sx * r + o.sx;
    st.sy = st.sy * r + o.sy;
    st.m = o.m;
  } else if (o.s != A(0)) {
    const A r = exp(o.m - st.m);
    st.s += o.s * r;
    st.sx += o.sx * r;
    st.sy += o.sy * r;
  }
}

// ---- raw kernels (no autograd, no checks); x contiguous [planes, H, W] ----
// out: contiguous, same shape.
void spatial_softmax_cpu(const Tensor& x, const Tensor& out, int64_t planes, int64_t H, int64_t W,
                         double temperature);
// out: contiguous [planes, 2] holding (x, y).
void soft_argmax_cpu(const Tensor& x, const Tensor& out, int64_t planes, int64_t H, int64_t W,
                     bool normalized, double temperature);
// dx = p * ((u_x - out_x) g_x + (u_y - out_y) g_y) / T; g and out contiguous [planes, 2].
void soft_argmax_backward_cpu(const Tensor& x, const Tensor& out, const Tensor& g,
                              const Tensor& dx, int64_t planes, int64_t H, int64_t W,
                              bool normalized, double temperature);
#ifdef CVG_WITH_CUDA
void spatial_softmax_cuda(const Tensor& x, const Tensor& out, int64_t planes, int64_t H,
                          int64_t W, double temperature);
void soft_argmax_cuda(const Tensor& x, const Tensor& out, int64_t planes, int64_t H, int64_t W,
                      bool normalized, double temperature);
void soft_argmax_backward_cuda(const Tensor& x, const Tensor& out, const Tensor& g,
                               const Tensor& dx, int64_t planes, int64_t H, int64_t W,
                               bool normalized, double temperature);
#endif

}  // namespace cvg
