// CPU kernels of the fused landmark losses (see kernels/landmark_loss.h). The equivariance loss
// runs one parallel_for task per range of (n, k) planes, the diversity loss one per range of
// images (a cell's winner needs all K maps of its image). Every plane is reduced in row-major
// order into double accumulators and the per-plane (per-image) partial losses are summed in
// index order afterwards, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel.h"
#include "kernels/dispatch.h"
#include "kernels/landmark_loss.h"
#include "kernels/landmark_loss_math.h"

namespace cvg {

namespace {

// Planes per task: enough elements (~16k) per task that the fork/join pays off.
int64_t plane_grain(int64_t hw) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, hw)); }

// The plane's maximum, or NaN when the plane holds one (which then makes the whole plane NaN,
// as softmax). Four running maxima and a separate NaN flag keep the loop free of a serial
// compare-and-branch chain.
template <typename T>
T plane_max(const T* z, int64_t n) {
  T m[4] = {-std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity(),
            -std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity()};
  bool nan = false;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
    for (int l = 0; l < 4; ++l) {
      m[l] = z[j + l] > m[l] ? z[j + l] : m[l];
      nan |= z[j + l] != z[j + l];
    }
  for (; j < n; ++j) {
    m[0] = z[j] > m[0] ? z[j] : m[0];
    nan |= z[j] != z[j];
  }
  if (nan) return std::numeric_limits<T>::quiet_NaN();
  return std::max(std::max(m[0], m[1]), std::max(m[2], m[3]));
}

// Softmax statistics of one plane of logits: p = e * inv_sum with e = exp(z - zmax), the mean
// position (mx, my) and the centred spread var = sum p |c - m|^2, where the plane places
// position c = pos(i, j, idx) at pixel (i, j).
struct Moments {
  double inv_sum, mx, my, var;
};

// Four passes over the plane (it stays in L1/L2): the max, exp(z - max) into the scratch e (a
// loop of nothing but the exp calls), the sums of e and e c, then the spread about the mean
// (the centred form). One exp per element; e is kept for the caller (the backward turns it
// into probabilities).
template <typename T, typename Pos>
Moments plane_moments(const T* z, int64_t h, int64_t w, Pos pos, T* e) {
  const T zmax = plane_max(z, h * w);
  for (int64_t idx = 0; idx < h * w; ++idx) e[idx] = std::exp(z[idx] - zmax);
  double s = 0, sx = 0, sy = 0;
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      const int64_t idx = i * w + j;
      const double ej = e[idx];
      const auto [cx, cy] = pos(i, j, idx);
      s += ej;
      sx += ej * cx;
      sy += ej * cy;
    }
  Moments mo{1.0 / s, 0, 0, 0};
  mo.mx = sx * mo.inv_sum;
  mo.my = sy * mo.inv_sum;
  double v = 0;
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      const auto [cx, cy] = pos(i, j, i * w + j);
      v += e[i * w + j] * lm_sq(cx - mo.mx, cy - mo.my);
    }
  mo.var = v * mo.inv_sum;
  return mo;
}

// Positions of the two maps: pixel (i, j) of the first map is at u = (j, i); of the second at
// G = grid[n, i, j] (gp points at image n's h x w x 2 grid).
struct PixelPos {
  std::pair<double, double> operator()(int64_t i, int64_t j, int64_t) const {
    return {static_cast<double>(j), static_cast<double>(i)};
  }
};
template <typename T>
struct GridPos {
  const T* gp;
  std::pair<double, double> operator()(int64_t, int64_t, int64_t idx) const {
    return {static_cast<double>(gp[2 * idx]), static_cast<double>(gp[2 * idx + 1])};
  }
};

// Per-image cell statistics of the diversity loss: zmax[k] and inv_sum[k] of each landmark's
// softmax, mass[k * cells + c] = sum over cell c of exp(z - zmax[k]) (times inv_sum[k] that is
// P_kc), and the winner of each cell with its mass P.
template <typename T>
struct Cells {
  int64_t K, h, w, m, cw, cells;
  std::vector<T> zmax, e;  // e: one plane's exp(z - zmax), scratch
  std::vector<double> inv_sum, mass, best;
  std::vector<int64_t> winner;

  Cells(int64_t K_, int64_t h_, int64_t w_, int64_t m_)
      : K(K_), h(h_), w(w_), m(m_), cw(w_ / m_), cells((h_ / m_) * (w_ / m_)), zmax(K_), e(h_ * w_),
        inv_sum(K_), mass(K_ * cells), best(cells), winner(cells) {}

  // xi: the image's K x h x w logits. Sum-pools each landmark's exps row by row (contiguous
  // reads), then scans the landmarks of every cell in order r = 0, 1, ... for its winner.
  void compute(const T* xi) {
    std::fill(mass.begin(), mass.end(), 0.0);
    for (int64_t k = 0; k < K; ++k) {
      const T* z = xi + k * h * w;
      double* mk = mass.data() + k * cells;
      zmax[k] = plane_max(z, h * w);
      // The exp calls in a loop of their own, then the sums.
      for (int64_t idx = 0; idx < h * w; ++idx) e[idx] = std::exp(z[idx] - zmax[k]);
      double s = 0;
      for (int64_t i = 0; i < h; ++i) {
        double* row = mk + (i / m) * cw;
        const T* er = e.data() + i * w;
        // Cell by cell along the row (no division per element).
        for (int64_t c = 0; c < cw; ++c) {
          double cs = 0;
          for (int64_t j = c * m; j < (c + 1) * m; ++j) cs += er[j];
          row[c] += cs;
          s += cs;
        }
      }
      inv_sum[k] = 1.0 / s;
    }
    for (int64_t c = 0; c < cells; ++c) {
      double b = mass[c] * inv_sum[0];
      int64_t r_best = 0;
      for (int64_t r = 1; r < K; ++r) {
        const double P = mass[r * cells + c] * inv_sum[r];
        if (lm_cell_beats(P, b)) {
          b = P;
          r_best = r;
        }
      }
      best[c] = b;
      winner[c] = r_best;
    }
  }

  // sum_c max_r P_cr, in cell order.
  double best_total() const {
    double t = 0;
    for (double b : best) t += b;
    return t;
  }
};

}  // namespace

void landmark_equivariance_loss_cpu(const Tensor& x, const Tensor& x2, const Tensor& grid,
                                    const Tensor& out) {
  dispatch_floating(x.dtype(), "landmark_equivariance_loss", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = x.size(0), K = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
    const T *px = x.data<T>(), *px2 = x2.data<T>(), *pg = grid.data<T>();
    std::vector<double> plane_loss(N * K);
    parallel_for(N * K, plane_grain(hw), [&](int64_t p0, int64_t p1) {
      std::vector<T> e(hw), e2(hw);
      for (int64_t p = p0; p < p1; ++p) {
        const Moments a = plane_moments(px + p * hw, h, w, PixelPos{}, e.data());
        const Moments b = plane_moments(px2 + p * hw, h, w, GridPos<T>{pg + (p / K) * hw * 2}, e2.data());
        plane_loss[p] = lm_equivariance_plane(a.var, b.var, a.mx, a.my, b.mx, b.my);
      }
    });
    double total = 0;
    for (double l : plane_loss) total += l;
    out.data<T>()[0] = static_cast<T>(total / static_cast<double>(N * K));
  });
}

void landmark_equivariance_loss_backward_cpu(const Tensor& g, const Tensor& x, const Tensor& x2,
                                             const Tensor& grid, const Tensor& dx) {
  dispatch_floating(x.dtype(), "landmark_equivariance_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = x.size(0), K = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
    const T *px = x.data<T>(), *px2 = x2.data<T>(), *pg = grid.data<T>();
    T* pd = dx.data<T>();
    const double scale = static_cast<double>(g.data<T>()[0]) / static_cast<double>(N * K);
    parallel_for(N * K, plane_grain(hw), [&](int64_t p0, int64_t p1) {
      std::vector<T> e(hw), e2(hw);
      for (int64_t p = p0; p < p1; ++p) {
        const GridPos<T> gpos{pg + (p / K) * hw * 2};
        const Moments a = plane_moments(px + p * hw, h, w, PixelPos{}, e.data());
        const Moments b = plane_moments(px2 + p * hw, h, w, gpos, e2.data());
        T* d = pd + p * hw;                // [0]: w.r.t. logits
        T* d2 = pd + (N * K + p) * hw;     // [1]: w.r.t. logits2
        for (int64_t i = 0; i < h; ++i)
          for (int64_t j = 0; j < w; ++j) {
            const int64_t idx = i * w + j;
            const auto [gx, gy] = gpos(i, j, idx);
            d[idx] = static_cast<T>(
                scale * lm_equivariance_grad(e[idx] * a.inv_sum, j - a.mx, i - a.my, a.var, a.mx,
                                             a.my, b.mx, b.my));
            d2[idx] = static_cast<T>(
                scale * lm_equivariance_grad(e2[idx] * b.inv_sum, gx - b.mx, gy - b.my, b.var,
                                             b.mx, b.my, a.mx, a.my));
          }
      }
    });
  });
}

void landmark_diversity_loss_cpu(const Tensor& x, int64_t m, const Tensor& out) {
  dispatch_floating(x.dtype(), "landmark_diversity_loss", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = x.size(0), K = x.size(1), h = x.size(2), w = x.size(3);
    const T* px = x.data<T>();
    std::vector<double> image_best(N);
    parallel_for(N, 1, [&](int64_t n0, int64_t n1) {
      Cells<T> cells(K, h, w, m);
      for (int64_t n = n0; n < n1; ++n) {
        cells.compute(px + n * K * h * w);
        image_best[n] = cells.best_total();
      }
    });
    double total = 0;
    for (double b : image_best) total += b;
    out.data<T>()[0] = static_cast<T>(static_cast<double>(K) - total / static_cast<double>(N));
  });
}

void landmark_diversity_loss_backward_cpu(const Tensor& g, const Tensor& x, int64_t m,
                                          const Tensor& dx) {
  dispatch_floating(x.dtype(), "landmark_diversity_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = x.size(0), K = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
    const T* px = x.data<T>();
    T* pd = dx.data<T>();
    const double scale = -static_cast<double>(g.data<T>()[0]) / static_cast<double>(N);
    parallel_for(N, 1, [&](int64_t n0, int64_t n1) {
      Cells<T> cells(K, h, w, m);
      std::vector<double> won(K);
      for (int64_t n = n0; n < n1; ++n) {
        cells.compute(px + n * K * hw);
        // W_r: the mass landmark r holds in the cells it wins.
        std::fill(won.begin(), won.end(), 0.0);
        for (int64_t c = 0; c < cells.cells; ++c) won[cells.winner[c]] += cells.best[c];
        for (int64_t k = 0; k < K; ++k) {
          const T* z = px + (n * K + k) * hw;
          T* d = pd + (n * K + k) * hw;
          for (int64_t i = 0; i < h; ++i) {
            const int64_t* row_winner = cells.winner.data() + (i / m) * cells.cw;
            for (int64_t c = 0; c < cells.cw; ++c) {
              const bool win = row_winner[c] == k;
              for (int64_t j = i * w + c * m; j < i * w + (c + 1) * m; ++j) {
                // The forward's exp (in T), so p matches the masses it summed.
                const double p = std::exp(z[j] - cells.zmax[k]) * cells.inv_sum[k];
                d[j] = static_cast<T>(scale * lm_diversity_grad(p, win, won[k]));
              }
            }
          }
        }
      }
    });
  });
}

}  // namespace cvg
