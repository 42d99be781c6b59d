// CPU loops of the normalisation ops (see kernels/norm.h and kernels/norm_math.h).
//
// Work is split by group: one task owns a group (a batch_norm channel, an instance_norm plane,
// a layer_norm row), reads its rows a few times while they are hot in cache and writes its
// outputs, so no two tasks touch the same output and the sums are taken in one fixed order
// whatever the thread count. Sums run in double with four independent accumulators (which
// breaks the add latency chain and lets the compiler use vector registers); the final
// per-element passes are written as y = a * x + b with coefficients hoisted out of the loop.
#include <algorithm>

#include "core/parallel.h"
#include "kernels/norm.h"

namespace cvg {

namespace {

// Grain in groups so that a task covers at least ~32K elements (tiny layer_norm rows are
// batched, big batch_norm channels each get a task).
int64_t group_grain(const NormGeom& g) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, g.count()));
}

template <typename T>
double row_sum(const T* p, int64_t n) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  for (; i < n; ++i) a0 += p[i];
  return (a0 + a1) + (a2 + a3);
}

template <typename T>
double row_sq_dev(const T* p, int64_t n, double m) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const double d0 = p[i] - m, d1 = p[i + 1] - m, d2 = p[i + 2] - m, d3 = p[i + 3] - m;
    a0 += d0 * d0;
    a1 += d1 * d1;
    a2 += d2 * d2;
    a3 += d3 * d3;
  }
  for (; i < n; ++i) {
    const double d = p[i] - m;
    a0 += d * d;
  }
  return (a0 + a1) + (a2 + a3);
}

// sum(dy) and sum(dy * (x - m)) over n elements.
template <typename T>
void row_dy_sums(const T* dy, const T* x, int64_t n, double m, double& s_dy, double& s_dyx) {
  double a0 = 0, a1 = 0, b0 = 0, b1 = 0;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    a0 += dy[i];
    a1 += dy[i + 1];
    b0 += static_cast<double>(dy[i]) * (x[i] - m);
    b1 += static_cast<double>(dy[i + 1]) * (x[i + 1] - m);
  }
  for (; i < n; ++i) {
    a0 += dy[i];
    b0 += static_cast<double>(dy[i]) * (x[i] - m);
  }
  s_dy += a0 + a1;
  s_dyx += b0 + b1;
}

template <typename T>
void forward_loop(const NormGeom& geom, const T* x, const T* w, const T* b, double eps,
                  bool compute_stats, T* mean, T* invstd, T* var, T* y) {
  const int64_t D = geom.D, reps = geom.reps();
  const double n = static_cast<double>(geom.count());
  parallel_for(geom.groups(), group_grain(geom), [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      double m, is;
      if (compute_stats) {
        double s = 0;
        for (int64_t r = 0; r < reps; ++r) s += row_sum(x + geom.row_offset(g, r), D);
        m = s / n;
        double sq = 0;
        for (int64_t r = 0; r < reps; ++r) sq += row_sq_dev(x + geom.row_offset(g, r), D, m);
        const double v = sq / n;
        is = norm_invstd(v, eps);
        mean[g] = static_cast<T>(m);
        invstd[g] = static_cast<T>(is);
        if (var) var[g] = static_cast<T>(v);
      } else {
        m = mean[g];
        is = invstd[g];
      }
      if (!geom.weight_on_d) {
        const int64_t c = geom.channel(g);
        const double wc = w ? static_cast<double>(w[c]) : 1.0;
        const double bc = b ? static_cast<double>(b[c]) : 0.0;
        const NormCoef<double> k = norm_forward_coef(m, is, wc, bc);
        const T a = static_cast<T>(k.a), sh = static_cast<T>(k.shift);
        for (int64_t r = 0; r < reps; ++r) {
          const int64_t off = geom.row_offset(g, r);
          const T* xr = x + off;
          T* yr = y + off;
          for (int64_t d = 0; d < D; ++d) yr[d] = xr[d] * a + sh;
        }
      } else {
        const T mt = static_cast<T>(m), it = static_cast<T>(is);
        const T* xr = x + geom.row_offset(g, 0);
        T* yr = y + geom.row_offset(g, 0);
        // Branches on the optional affine hoisted out of the loops, which then vectorise.
        for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - mt) * it;
        if (w) for (int64_t d = 0; d < D; ++d) yr[d] *= w[d];
        if (b) for (int64_t d = 0; d < D; ++d) yr[d] += b[d];
      }
    }
  });
}

template <typename T>
void backward_loop(const NormGeom& geom, const T* dy, const T* x, const T* mean, const T* invstd,
                   const T* w, T* dx, T* sum_dy, T* sum_dy_xhat) {
  const int64_t D = geom.D, reps = geom.reps();
  const double n = static_cast<double>(geom.count());
  parallel_for(geom.groups(), group_grain(geom), [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      const double m = mean[g], is = invstd[g];
      if (!geom.weight_on_d) {
        double s_dy = 0, s_dyx = 0;
        for (int64_t r = 0; r < reps; ++r) {
          const int64_t off = geom.row_offset(g, r);
          row_dy_sums(dy + off, x + off, D, m, s_dy, s_dyx);
        }
        const double s_dyxhat = s_dyx * is;
        if (sum_dy) sum_dy[g] = static_cast<T>(s_dy);
        if (sum_dy_xhat) sum_dy_xhat[g] = static_cast<T>(s_dyxhat);
        if (!dx) continue;
        const double wc = w ? static_cast<double>(w[geom.channel(g)]) : 1.0;
        // gy = wc * dy, so the multiplier of dy is ka * wc.
        const NormBackwardCoef<double> k = norm_backward_coef(m, is, wc * s_dy / n, wc * s_dyxhat / n);
        const T ka = static_cast<T>(k.ka * wc), kb = static_cast<T>(k.kb), kc = static_cast<T>(k.kc);
        for (int64_t r = 0; r < reps; ++r) {
          const int64_t off = geom.row_offset(g, r);
          const T *dyr = dy + off, *xr = x + off;
          T* dxr = dx + off;
          for (int64_t d = 0; d < D; ++d) dxr[d] = ka * dyr[d] + kb * xr[d] + kc;
        }
      } else {
        // Elementwise weight: one row per group; the sums are of gy = dy * w[d].
        const int64_t off = geom.row_offset(g, 0);
        const T *dyr = dy + off, *xr = x + off;
        double s_gy = 0, s_gyx = 0;
        if (w) {
          for (int64_t d = 0; d < D; ++d) {
            const double gy = static_cast<double>(dyr[d]) * w[d];
            s_gy += gy;
            s_gyx += gy * (xr[d] - m);
          }
        } else {
          row_dy_sums(dyr, xr, D, m, s_gy, s_gyx);
        }
        if (!dx) continue;
        const NormBackwardCoef<double> k = norm_backward_coef(m, is, s_gy / n, s_gyx * is / n);
        const T ka = static_cast<T>(k.ka), kb = static_cast<T>(k.kb), kc = static_cast<T>(k.kc);
        T* dxr = dx + off;
        if (w) {
          for (int64_t d = 0; d < D; ++d) dxr[d] = ka * w[d] * dyr[d] + kb * xr[d] + kc;
        } else {
          for (int64_t d = 0; d < D; ++d) dxr[d] = ka * dyr[d] + kb * xr[d] + kc;
        }
      }
    }
  });
}

// Column sums for layer_norm's weight and bias: each task owns a block of kCols columns and
// walks the rows in order, so every column is summed in one fixed order.
template <typename T>
void affine_grad_loop(const NormGeom& geom, const T* dy, const T* x, const T* mean,
                      const T* invstd, T* dw, T* db) {
  constexpr int64_t kCols = 256;
  const int64_t A = geom.A, D = geom.D, blocks = (D + kCols - 1) / kCols;
  parallel_for(blocks, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, A * kCols)),
               [&](int64_t k0, int64_t k1) {
                 double sw[kCols], sb[kCols];
                 for (int64_t k = k0; k < k1; ++k) {
                   const int64_t d0 = k * kCols, w = std::min(kCols, D - d0);
                   for (int64_t c = 0; c < w; ++c) sw[c] = sb[c] = 0;
                   for (int64_t a = 0; a < A; ++a) {
                     const T *dyr = dy + a * D + d0, *xr = x + a * D + d0;
                     const double m = mean[a], is = invstd[a];
                     for (int64_t c = 0; c < w; ++c) {
                       sw[c] += static_cast<double>(dyr[c]) * ((xr[c] - m) * is);
                       sb[c] += dyr[c];
                     }
                   }
                   for (int64_t c = 0; c < w; ++c) {
                     if (dw) dw[d0 + c] = static_cast<T>(sw[c]);
                     if (db) db[d0 + c] = static_cast<T>(sb[c]);
                   }
                 }
               });
}

template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void norm_forward_cpu(const Tensor& x, const NormGeom& geom, const Tensor& weight,
                      const Tensor& bias, double eps, bool compute_stats, const Tensor& mean,
                      const Tensor& invstd, const Tensor& var, const Tensor& y) {
  dispatch_floating(x.dtype(), "norm_forward_cpu", [&](auto tag) {
    using T = decltype(tag);
    forward_loop<T>(geom, x.data<T>(), ptr_or_null<T>(weight), ptr_or_null<T>(bias), eps,
                    compute_stats, mean.data<T>(), invstd.data<T>(), ptr_or_null<T>(var),
                    y.data<T>());
  });
}

void norm_running_update_cpu(const Tensor& running_mean, const Tensor& running_var,
                             const Tensor& mean, const Tensor& var, double momentum, int64_t n) {
  dispatch_floating(mean.dtype(), "norm_running_update_cpu", [&](auto tag) {
    using T = decltype(tag);
    T *rm = running_mean.data<T>(), *rv = running_var.data<T>();
    const T *m = mean.data<T>(), *v = var.data<T>();
    const T keep = static_cast<T>(1.0 - momentum), mt = static_cast<T>(momentum);
    const T mu = static_cast<T>(momentum * static_cast<double>(n) / static_cast<double>(n - 1));
    for (int64_t c = 0; c < mean.numel(); ++c)
      norm_running_update(rm[c], rv[c], m[c], v[c], keep, mt, mu);
  });
}

void norm_backward_cpu(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                       const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                       const Tensor& dx, const Tensor& sum_dy, const Tensor& sum_dy_xhat) {
  dispatch_floating(x.dtype(), "norm_backward_cpu", [&](auto tag) {
    using T = decltype(tag);
    backward_loop<T>(geom, dy.data<T>(), x.data<T>(), mean.data<T>(), invstd.data<T>(),
                     ptr_or_null<T>(weight), ptr_or_null<T>(dx), ptr_or_null<T>(sum_dy),
                     ptr_or_null<T>(sum_dy_xhat));
  });
}

void norm_affine_grad_cpu(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                          const Tensor& mean, const Tensor& invstd, const Tensor& dw,
                          const Tensor& db) {
  dispatch_floating(x.dtype(), "norm_affine_grad_cpu", [&](auto tag) {
    using T = decltype(tag);
    affine_grad_loop<T>(geom, dy.data<T>(), x.data<T>(), mean.data<T>(), invstd.data<T>(),
                        ptr_or_null<T>(dw), ptr_or_null<T>(db));
  });
}

}  // namespace cvg
