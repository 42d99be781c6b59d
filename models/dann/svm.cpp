#include "models/dann/svm.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "kernels/index.h"

namespace cvg::dann {

namespace {

struct Rows {
  int64_t n = 0, d = 0;
  std::vector<double> x;  // n x d
  std::vector<int64_t> y;
};

Rows rows_of(const char* op, const Tensor& x, const Tensor& y, int64_t classes) {
  CVG_CHECK(x.defined() && y.defined(), op, ": undefined features or labels");
  CVG_CHECK(x.dim() == 2 && y.dim() == 1 && x.size(0) == y.size(0), op,
            ": expected features [N, D] and labels [N], got ", x.shape(), " and ", y.shape());
  CVG_CHECK(x.size(0) >= 2 && x.size(1) >= 1, op, ": need at least 2 rows and 1 feature, got ",
            x.shape());
  CVG_CHECK(classes >= 2, op, ": classes must be >= 2, got ", classes);
  Rows r;
  r.n = x.size(0);
  r.d = x.size(1);
  r.x = x.detach().to(kCPU).to(DType::float64).contiguous().to_vector<double>();
  r.y = y.detach().to(kCPU).to(DType::int64).contiguous().to_vector<int64_t>();
  for (int64_t i = 0; i < r.n; ++i)
    CVG_CHECK(r.y[i] >= 0 && r.y[i] < classes, op, ": label ", r.y[i], " of row ", i,
              " is outside [0, ", classes, ")");
  for (double v : r.x) CVG_CHECK(std::isfinite(v), op, ": features must be finite, got ", v);
  return r;
}

// Scores of one standardised row z (d values, the constant 1 implied) under row k of w.
double score(const double* wk, const double* z, int64_t d) {
  double s = wk[d];
  for (int64_t j = 0; j < d; ++j) s += wk[j] * z[j];
  return s;
}

// Dual coordinate descent for one class against the rest (conventions in the header). z: n x d
// standardised rows; wk: d + 1 weights (output). Returns the sweeps used.
int64_t fit_one(const std::vector<double>& z, const std::vector<double>& sq, int64_t n, int64_t d,
                const std::vector<int64_t>& y, int64_t k, double c, int64_t max_epochs, double tol,
                double* wk) {
  const double diag = 1.0 / (2.0 * c);
  std::vector<double> alpha(static_cast<size_t>(n), 0.0);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 gen(0x5eed0000u + static_cast<uint64_t>(k));
  std::fill(wk, wk + d + 1, 0.0);
  int64_t epoch = 0;
  while (epoch < max_epochs) {
    ++epoch;
    // Fisher-Yates with the generator's raw output (std::shuffle's algorithm is not specified).
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(order[i], order[static_cast<int64_t>(gen() % static_cast<uint64_t>(i + 1))]);
    double worst = 0;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t i = order[t];
      const double yi = y[i] == k ? 1.0 : -1.0;
      const double* zi = &z[static_cast<size_t>(i * d)];
      const double g = yi * score(wk, zi, d) - 1.0 + diag * alpha[i];
      const double pg = alpha[i] == 0.0 ? std::min(g, 0.0) : g;
      worst = std::max(worst, std::fabs(pg));
      if (pg == 0.0) continue;
      const double old = alpha[i];
      alpha[i] = std::max(old - g / (sq[i] + diag), 0.0);
      const double step = (alpha[i] - old) * yi;
      for (int64_t j = 0; j < d; ++j) wk[j] += step * zi[j];
      wk[d] += step;
    }
    if (worst < tol) break;
  }
  return epoch;
}

}  // namespace

LinearSvm fit_linear_svm(const Tensor& x, const Tensor& y, int64_t classes, double c,
                         int64_t max_epochs, double tol) {
  const char* op = "fit_linear_svm";
  CVG_CHECK(c > 0 && std::isfinite(c), op, ": C must be positive and finite, got ", c);
  CVG_CHECK(max_epochs >= 1 && tol > 0, op, ": need max_epochs >= 1 and tol > 0, got ", max_epochs,
            " and ", tol);
  const Rows r = rows_of(op, x, y, classes);
  LinearSvm m;
  m.classes = classes;
  m.dim = r.d;
  m.c = c;
  m.mean.assign(static_cast<size_t>(r.d), 0.0);
  m.sd.assign(static_cast<size_t>(r.d), 0.0);
  for (int64_t i = 0; i < r.n; ++i)
    for (int64_t j = 0; j < r.d; ++j) m.mean[j] += r.x[i * r.d + j];
  for (double& v : m.mean) v /= static_cast<double>(r.n);
  for (int64_t i = 0; i < r.n; ++i)
    for (int64_t j = 0; j < r.d; ++j) {
      const double e = r.x[i * r.d + j] - m.mean[j];
      m.sd[j] += e * e;
    }
  for (double& v : m.sd) v = std::sqrt(v / static_cast<double>(r.n)) + 1e-6;
  std::vector<double> z(r.x.size()), sq(static_cast<size_t>(r.n), 1.0);  // 1: the constant feature
  for (int64_t i = 0; i < r.n; ++i)
    for (int64_t j = 0; j < r.d; ++j) {
      const double v = (r.x[i * r.d + j] - m.mean[j]) / m.sd[j];
      z[i * r.d + j] = v;
      sq[i] += v * v;
    }
  m.w.assign(static_cast<size_t>(classes * (r.d + 1)), 0.0);
  for (int64_t k = 0; k < classes; ++k)
    m.epochs = std::max(m.epochs, fit_one(z, sq, r.n, r.d, r.y, k, c, max_epochs, tol,
                                          &m.w[static_cast<size_t>(k * (r.d + 1))]));
  return m;
}

Tensor LinearSvm::predict(const Tensor& x) const {
  CVG_CHECK(x.defined() && x.dim() == 2 && x.size(1) == dim, "LinearSvm::predict: expected [N, ", dim,
            "] features, got ", x.defined() ? x.shape() : Shape{});
  const int64_t n = x.size(0);
  const std::vector<double> v = x.detach().to(kCPU).to(DType::float64).contiguous().to_vector<double>();
  std::vector<int64_t> pred(static_cast<size_t>(n), 0);
  std::vector<double> z(static_cast<size_t>(dim));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < dim; ++j) z[j] = (v[i * dim + j] - mean[j]) / sd[j];
    double best = 0;
    for (int64_t k = 0; k < classes; ++k) {
      const double s = score(&w[static_cast<size_t>(k * (dim + 1))], z.data(), dim);
      if (k == 0 || s > best) {
        best = s;
        pred[i] = k;
      }
    }
  }
  return from_vector<int64_t>(pred, {n}, TensorOptions{}.with_dtype(DType::int64));
}

double LinearSvm::accuracy(const Tensor& x, const Tensor& y) const {
  CVG_CHECK(y.defined() && y.dim() == 1 && y.size(0) == x.size(0) && x.size(0) > 0,
            "LinearSvm::accuracy: ", x.size(0), " rows and labels of shape ",
            y.defined() ? y.shape() : Shape{});
  const std::vector<int64_t> p = predict(x).to_vector<int64_t>();
  const std::vector<int64_t> t = y.detach().to(kCPU).to(DType::int64).contiguous().to_vector<int64_t>();
  int64_t hit = 0;
  for (size_t i = 0; i < p.size(); ++i) hit += p[i] == t[i];
  return static_cast<double>(hit) / static_cast<double>(p.size());
}

SelectedSvm fit_svm_selected(const Tensor& x, const Tensor& y, int64_t classes,
                             const std::vector<double>& grid) {
  const char* op = "fit_svm_selected";
  CVG_CHECK(!grid.empty(), op, ": empty grid of C values");
  CVG_CHECK(x.defined() && x.dim() == 2 && x.size(0) >= 10, op,
            ": need [N, D] features with N >= 10 to hold out a fifth, got ",
            x.defined() ? x.shape() : Shape{});
  // Every fifth row is held out: the rows keep their order, so a class-ordered set stays stratified.
  std::vector<int64_t> fit_rows, held_rows;
  for (int64_t i = 0; i < x.size(0); ++i) (i % 5 == 4 ? held_rows : fit_rows).push_back(i);
  auto rows = [](const Tensor& t, const std::vector<int64_t>& idx) {
    return index_select(t.detach().to(kCPU), 0,
                        from_vector<int64_t>(idx, {static_cast<int64_t>(idx.size())},
                                             TensorOptions{}.with_dtype(DType::int64)));
  };
  const Tensor xf = rows(x, fit_rows), yf = rows(y, fit_rows), xh = rows(x, held_rows),
               yh = rows(y, held_rows);
  SelectedSvm out;
  size_t best = 0;
  for (size_t g = 0; g < grid.size(); ++g) {
    out.validation.push_back(fit_linear_svm(xf, yf, classes, grid[g]).accuracy(xh, yh));
    if (out.validation[g] > out.validation[best]) best = g;
  }
  out.svm = fit_linear_svm(x, y, classes, grid[best]);
  return out;
}

}  // namespace cvg::dann
