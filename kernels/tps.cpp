// Thin-plate-spline grids (conventions in kernels/tps.h): the basis matrices are built on the
// host in float64, the batch is applied with matmul (so autograd comes from matmul and add).
#include "kernels/tps.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/matmul.h"
#include "kernels/sample_math.h"
#include "kernels/view.h"

namespace cvg {

namespace {

struct Point {
  double x, y;
};

// Bookstein's kernel as a function of the squared distance: r^2 log r^2.
double tps_kernel(double r2) { return r2 > 0 ? r2 * std::log(r2) : 0.0; }
// Thewlis's regularised kernel.
double tps_kernel_eps(double r2) { return r2 * std::log(r2 + 1e-5); }

double dist2(Point a, Point b) { return (a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y); }

std::vector<Point> control_points(const char* op, const Tensor& control) {
  CVG_CHECK(control.defined(), op, ": undefined control");
  CVG_CHECK(is_floating(control.dtype()), op, ": control must be float32 or float64, got ",
            dtype_name(control.dtype()));
  CVG_CHECK(control.dim() == 2 && control.shape()[1] == 2, op,
            ": control must be K x 2 (x, y), got shape ", control.shape());
  const std::vector<double> v = control.detach().to(kCPU).to_vector<double>();
  std::vector<Point> c(v.size() / 2);
  for (size_t k = 0; k < c.size(); ++k) {
    c[k] = {v[2 * k], v[2 * k + 1]};
    CVG_CHECK(std::isfinite(c[k].x) && std::isfinite(c[k].y), op, ": control point ", k,
              " is not finite");
  }
  return c;
}

void check_size(const char* op, std::array<int64_t, 2> size) {
  CVG_CHECK(size[0] >= 1 && size[1] >= 1, op, ": size must be {H, W} with H, W >= 1, got [",
            size[0], ", ", size[1], "]");
}

// Base points (x, y) of an H x W grid, row-major.
std::vector<Point> base_points(std::array<int64_t, 2> size, bool align_corners) {
  std::vector<Point> p(static_cast<size_t>(size[0] * size[1]));
  for (int64_t i = 0; i < size[0]; ++i)
    for (int64_t j = 0; j < size[1]; ++j)
      p[static_cast<size_t>(i * size[1] + j)] = {base_grid_coordinate(j, size[1], align_corners),
                                                 base_grid_coordinate(i, size[0], align_corners)};
  return p;
}

// The first K columns of L^-1 for the TPS system L of the control points (row-major
// (K + 3) x K), by Gauss-Jordan elimination with partial pivoting.
std::vector<double> tps_inverse_columns(const char* op, const std::vector<Point>& c) {
  const int64_t k = static_cast<int64_t>(c.size()), m = k + 3;
  // [L | I_K-columns], m x (m + k).
  const int64_t cols = m + k;
  std::vector<double> a(static_cast<size_t>(m * cols), 0.0);
  auto at = [&](int64_t r, int64_t col) -> double& { return a[static_cast<size_t>(r * cols + col)]; };
  double scale = 1.0;
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) at(i, j) = tps_kernel(dist2(c[i], c[j]));
    const double p[3] = {1.0, c[i].x, c[i].y};
    for (int d = 0; d < 3; ++d) at(i, k + d) = at(k + d, i) = p[d];
    at(i, m + i) = 1.0;
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < m; ++j) scale = std::max(scale, std::fabs(at(i, j)));
  for (int64_t col = 0; col < m; ++col) {
    int64_t piv = col;
    for (int64_t r = col + 1; r < m; ++r)
      if (std::fabs(at(r, col)) > std::fabs(at(piv, col))) piv = r;
    CVG_CHECK(std::fabs(at(piv, col)) > 1e-12 * scale, op, ": the TPS system of the ", k,
              " control points is singular (are two control points equal, or all on one line?)");
    if (piv != col)
      for (int64_t j = 0; j < cols; ++j) std::swap(at(piv, j), at(col, j));
    const double inv = 1.0 / at(col, col);
    for (int64_t j = 0; j < cols; ++j) at(col, j) *= inv;
    for (int64_t r = 0; r < m; ++r) {
      if (r == col || at(r, col) == 0.0) continue;
      const double f = at(r, col);
      for (int64_t j = 0; j < cols; ++j) at(r, j) -= f * at(col, j);
    }
  }
  std::vector<double> inv(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) inv[static_cast<size_t>(i * k + j)] = at(i, m + j);
  return inv;
}

Tensor host_f64(std::vector<double> v, const Shape& shape) {
  return from_vector<double>(v, shape, TensorOptions{}.with_dtype(DType::float64));
}

// A float64 host tensor moved to `like`'s dtype and device.
Tensor as_like(const Tensor& host, const Tensor& like) {
  return host.to(like.dtype()).to(like.device());
}

// M of tps.h, H*W x K, with its checks.
Tensor basis_matrix(const char* op, const std::vector<Point>& c, std::array<int64_t, 2> size,
                    bool align_corners) {
  check_size(op, size);
  const int64_t k = static_cast<int64_t>(c.size());
  CVG_CHECK(k >= 3, op, ": a TPS needs at least 3 control points, got ", k);
  const std::vector<double> inv = tps_inverse_columns(op, c);
  const std::vector<Point> pts = base_points(size, align_corners);
  const int64_t np = static_cast<int64_t>(pts.size());
  std::vector<double> m(static_cast<size_t>(np * k), 0.0);
  std::vector<double> b(static_cast<size_t>(k + 3));
  for (int64_t p = 0; p < np; ++p) {
    for (int64_t j = 0; j < k; ++j) b[j] = tps_kernel(dist2(pts[p], c[j]));
    b[k] = 1.0;
    b[k + 1] = pts[p].x;
    b[k + 2] = pts[p].y;
    double* row = &m[static_cast<size_t>(p * k)];
    for (int64_t j = 0; j < k + 3; ++j) {
      const double bj = b[j];
      const double* inv_row = &inv[static_cast<size_t>(j * k)];
      for (int64_t q = 0; q < k; ++q) row[q] += bj * inv_row[q];
    }
  }
  return host_f64(std::move(m), {np, k});
}

}  // namespace

Tensor tps_basis(const Tensor& control, std::array<int64_t, 2> size, bool align_corners) {
  const char* op = "tps_basis";
  return basis_matrix(op, control_points(op, control), size, align_corners);
}

Tensor tps_grid(const Tensor& control, const Tensor& displacement, std::array<int64_t, 2> size,
                bool align_corners) {
  const char* op = "tps_grid";
  const std::vector<Point> c = control_points(op, control);
  const int64_t k = static_cast<int64_t>(c.size());
  CVG_CHECK(displacement.defined(), op, ": undefined displacement");
  CVG_CHECK(is_floating(displacement.dtype()), op,
            ": displacement must be float32 or float64, got ", dtype_name(displacement.dtype()));
  CVG_CHECK(displacement.dim() == 3 && displacement.shape()[1] == k &&
                displacement.shape()[2] == 2,
            op, ": displacement must be N x K x 2 with K = ", k, " control points, got shape ",
            displacement.shape());
  common_device(op, {control, displacement});
  TraceOp trace(op, {control, displacement});
  const Tensor m = as_like(basis_matrix(op, c, size, align_corners), displacement);
  std::vector<double> base;
  for (const Point& p : base_points(size, align_corners)) {
    base.push_back(p.x);
    base.push_back(p.y);
  }
  const int64_t np = size[0] * size[1];
  const Tensor grid = add(matmul(m, displacement), as_like(host_f64(base, {np, 2}), displacement));
  return trace.result(reshape(grid, {displacement.shape()[0], size[0], size[1], 2}));
}

Tensor tps_grid_weights(const Tensor& control, const Tensor& params, std::array<int64_t, 2> size,
                        bool align_corners) {
  const char* op = "tps_grid_weights";
  const std::vector<Point> c = control_points(op, control);
  const int64_t k = static_cast<int64_t>(c.size());
  CVG_CHECK(params.defined(), op, ": undefined params");
  CVG_CHECK(is_floating(params.dtype()), op, ": params must be float32 or float64, got ",
            dtype_name(params.dtype()));
  CVG_CHECK(params.dim() == 3 && params.shape()[1] == k + 3 && params.shape()[2] == 2, op,
            ": params must be N x (K + 3) x 2 with K = ", k, " control points, got shape ",
            params.shape());
  check_size(op, size);
  common_device(op, {control, params});
  TraceOp trace(op, {control, params});
  const std::vector<Point> pts = base_points(size, align_corners);
  const int64_t np = static_cast<int64_t>(pts.size());
  std::vector<double> b(static_cast<size_t>(np * (k + 3)));
  for (int64_t p = 0; p < np; ++p) {
    double* row = &b[static_cast<size_t>(p * (k + 3))];
    for (int64_t j = 0; j < k; ++j) row[j] = tps_kernel_eps(dist2(pts[p], c[j]));
    row[k] = 1.0;
    row[k + 1] = pts[p].x;
    row[k + 2] = pts[p].y;
  }
  const Tensor grid = matmul(as_like(host_f64(std::move(b), {np, k + 3}), params), params);
  return trace.result(reshape(grid, {params.shape()[0], size[0], size[1], 2}));
}

}  // namespace cvg
