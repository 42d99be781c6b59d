#include "models/landmarks/regressor.h"

#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "kernels/reduce.h"
#include "kernels/view.h"

namespace cvg::landmarks {

namespace {

std::vector<double> rows_of(const Tensor& t, int64_t n, int64_t cols) {
  CVG_CHECK(t.numel() == n * cols, "regressor: expected ", n, " x ", cols, " values, got shape ",
            t.shape());
  return t.to(kCPU).to(DType::float64).contiguous().to_vector<double>();
}

// Solves A X = B in place for symmetric positive definite A (m x m) and B (m x r) by Cholesky.
void cholesky_solve(std::vector<double>& a, std::vector<double>& b, int64_t m, int64_t r) {
  for (int64_t j = 0; j < m; ++j) {
    double d = a[j * m + j];
    for (int64_t k = 0; k < j; ++k) d -= a[j * m + k] * a[j * m + k];
    CVG_CHECK(d > 0, "fit_linear_regressor: the normal equations are singular (pivot ", j,
              " = ", d, "); raise the ridge");
    const double l = std::sqrt(d);
    a[j * m + j] = l;
    for (int64_t i = j + 1; i < m; ++i) {
      double s = a[i * m + j];
      for (int64_t k = 0; k < j; ++k) s -= a[i * m + k] * a[j * m + k];
      a[i * m + j] = s / l;
    }
  }
  for (int64_t c = 0; c < r; ++c) {
    for (int64_t i = 0; i < m; ++i) {  // L z = b
      double s = b[i * r + c];
      for (int64_t k = 0; k < i; ++k) s -= a[i * m + k] * b[k * r + c];
      b[i * r + c] = s / a[i * m + i];
    }
    for (int64_t i = m - 1; i >= 0; --i) {  // L^T x = z
      double s = b[i * r + c];
      for (int64_t k = i + 1; k < m; ++k) s -= a[k * m + i] * b[k * r + c];
      b[i * r + c] = s / a[i * m + i];
    }
  }
}

}  // namespace

Tensor fit_linear_regressor(const Tensor& detected, const Tensor& points, double ridge) {
  CVG_CHECK(detected.dim() == 3 && detected.size(2) == 2 && points.dim() == 3 &&
                points.size(2) == 2 && detected.size(0) == points.size(0) && detected.size(0) >= 1,
            "fit_linear_regressor: expected detected N x K x 2 and points N x P x 2 with the same "
            "N >= 1, got ", detected.shape(), " and ", points.shape());
  CVG_CHECK(ridge > 0, "fit_linear_regressor: ridge must be positive, got ", ridge);
  const int64_t n = detected.size(0), m = 2 * detected.size(1), r = 2 * points.size(1);
  const std::vector<double> x = rows_of(detected, n, m), y = rows_of(points, n, r);
  std::vector<double> a(static_cast<size_t>(m * m), 0.0), b(static_cast<size_t>(m * r), 0.0);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t i = 0; i < m; ++i) {
      const double xi = x[s * m + i];
      for (int64_t j = 0; j < m; ++j) a[i * m + j] += xi * x[s * m + j];
      for (int64_t j = 0; j < r; ++j) b[i * r + j] += xi * y[s * r + j];
    }
  double trace = 0;
  for (int64_t i = 0; i < m; ++i) trace += a[i * m + i];
  const double lambda = ridge * std::max(trace / static_cast<double>(m), 1e-12);
  for (int64_t i = 0; i < m; ++i) a[i * m + i] += lambda;
  cholesky_solve(a, b, m, r);
  return from_vector(b, {m, r}, TensorOptions{}.with_dtype(DType::float64));
}

Tensor apply_regressor(const Tensor& regressor, const Tensor& detected) {
  CVG_CHECK(regressor.dim() == 2 && detected.dim() == 3 && detected.size(2) == 2 &&
                regressor.size(0) == 2 * detected.size(1) && regressor.size(1) % 2 == 0,
            "apply_regressor: regressor ", regressor.shape(), " does not fit detected landmarks ",
            detected.shape());
  const int64_t n = detected.size(0), m = regressor.size(0), r = regressor.size(1);
  const std::vector<double> x = rows_of(detected, n, m), w = rows_of(regressor, m, r);
  std::vector<double> y(static_cast<size_t>(n * r), 0.0);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < r; ++j) y[s * r + j] += x[s * m + i] * w[i * r + j];
  return from_vector(y, {n, r / 2, 2}, TensorOptions{}.with_dtype(DType::float64));
}

double iod_error(const Tensor& pred, const Tensor& truth, int64_t left_eye, int64_t right_eye) {
  CVG_CHECK(pred.shape() == truth.shape() && pred.dim() == 3 && pred.size(2) == 2,
            "iod_error: pred and truth must both be N x P x 2, got ", pred.shape(), " and ",
            truth.shape());
  const int64_t n = pred.size(0), p = pred.size(1);
  CVG_CHECK(left_eye >= 0 && left_eye < p && right_eye >= 0 && right_eye < p && left_eye != right_eye,
            "iod_error: eye indices ", left_eye, ", ", right_eye, " out of range for ", p, " points");
  const std::vector<double> a = rows_of(pred, n, 2 * p), t = rows_of(truth, n, 2 * p);
  double total = 0;
  for (int64_t s = 0; s < n; ++s) {
    const double* q = &t[s * 2 * p];
    const double iod = std::hypot(q[2 * left_eye] - q[2 * right_eye],
                                  q[2 * left_eye + 1] - q[2 * right_eye + 1]);
    CVG_CHECK(iod > 0, "iod_error: image ", s, " has coincident eye points");
    for (int64_t k = 0; k < p; ++k)
      total += std::hypot(a[s * 2 * p + 2 * k] - q[2 * k], a[s * 2 * p + 2 * k + 1] - q[2 * k + 1]) / iod;
  }
  return total / static_cast<double>(n * p);
}

Tensor mean_shape(const Tensor& train_points) {
  CVG_CHECK(train_points.dim() == 3 && train_points.size(0) >= 1,
            "mean_shape: expected N x P x 2 points, got ", train_points.shape());
  NoGradGuard no_grad;
  return mean(train_points.to(kCPU).to(DType::float64), {0}, /*keepdim=*/true);
}

}  // namespace cvg::landmarks
