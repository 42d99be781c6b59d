// The dann app's evaluation protocol of the thesis (models/dann/svm.h): the linear SVM that
// replaces the last layer (separable data, optimality of the dual solution, determinism, the
// choice of C, errors), G_y's last hidden layer that feeds it, and the study table's SVM rows.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/reduce.h"
#include "kernels/view.h"
#include "models/dann/model.h"
#include "models/dann/study.h"
#include "models/dann/svm.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::dann;
using Catch::Matchers::Contains;

namespace {

const TensorOptions i64 = TensorOptions{}.with_dtype(DType::int64);

// n points per class around the given 2-D centres, with N(0, spread^2) noise; class-major order.
std::pair<Tensor, Tensor> blobs(const std::vector<std::pair<double, double>>& centres, int64_t n,
                                double spread, uint64_t seed) {
  manual_seed(seed);
  const int64_t k = static_cast<int64_t>(centres.size());
  const std::vector<double> noise = randn({k * n, 2}).to(DType::float64).to_vector<double>();
  std::vector<double> x(static_cast<size_t>(k * n * 2));
  std::vector<int64_t> y(static_cast<size_t>(k * n));
  for (int64_t c = 0; c < k; ++c)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = c * n + i;
      x[2 * r] = centres[c].first + spread * noise[2 * r];
      x[2 * r + 1] = centres[c].second + spread * noise[2 * r + 1];
      y[r] = c;
    }
  return {from_vector(x, {k * n, 2}), from_vector<int64_t>(y, {k * n}, i64)};
}

}  // namespace

TEST_CASE("linear SVM: separates separable classes and predicts new points", "[dann][svm]") {
  const std::vector<std::pair<double, double>> centres{{0, 0}, {6, 0}, {0, 6}};
  const auto [x, y] = blobs(centres, 60, 0.5, 3);
  const LinearSvm m = fit_linear_svm(x, y, 3, 1.0);
  CHECK(m.classes == 3);
  CHECK(m.dim == 2);
  CHECK(m.accuracy(x, y) == 1.0);
  const auto [x2, y2] = blobs(centres, 20, 0.5, 4);
  CHECK(m.accuracy(x2, y2) == 1.0);
  const Tensor p = m.predict(tensor({6.2, 0.1, -0.3, 5.5}, {2, 2}));
  CHECK(p.dtype() == DType::int64);
  CHECK(p.to_vector<int64_t>() == std::vector<int64_t>{1, 2});
}

// The dual coordinate descent must land on the minimiser of the primal the header states:
// 1/2 |w_k|^2 + C sum_i max(0, 1 - y_ik w_k . [z_i; 1])^2, whose gradient is
// w_k - 2 C sum_i max(0, 1 - y_ik s_ik) y_ik [z_i; 1].
TEST_CASE("linear SVM: the dual solution zeroes the primal gradient", "[dann][svm]") {
  // Overlapping classes (spread 2 for centres 3 apart), so many hinge terms are active.
  const auto [x, y] = blobs({{0, 0}, {3, 0}, {0, 3}}, 30, 2.0, 5);
  for (const double c : {0.05, 2.0}) {
    const LinearSvm m = fit_linear_svm(x, y, 3, c, 200000, 1e-10);
    const std::vector<double> xv = x.to_vector<double>();
    const std::vector<int64_t> yv = y.to_vector<int64_t>();
    double worst = 0, active = 0;
    for (int64_t k = 0; k < 3; ++k) {
      const double* w = &m.w[static_cast<size_t>(k * 3)];
      double g[3] = {w[0], w[1], w[2]};
      for (size_t i = 0; i < yv.size(); ++i) {
        const double z0 = (xv[2 * i] - m.mean[0]) / m.sd[0], z1 = (xv[2 * i + 1] - m.mean[1]) / m.sd[1];
        const double yi = yv[i] == k ? 1.0 : -1.0;
        const double slack = std::max(0.0, 1.0 - yi * (w[0] * z0 + w[1] * z1 + w[2]));
        active += slack > 0;
        g[0] -= 2 * c * slack * yi * z0;
        g[1] -= 2 * c * slack * yi * z1;
        g[2] -= 2 * c * slack * yi;
      }
      for (double v : g) worst = std::max(worst, std::fabs(v));
    }
    INFO("C = " << c << ", active hinge terms " << active);
    CHECK(active > 20);
    CHECK(worst < 1e-6);
  }
}

TEST_CASE("linear SVM: deterministic, C chosen on held-out rows, bad inputs named", "[dann][svm]") {
  const auto [x, y] = blobs({{0, 0}, {3, 0}, {0, 3}}, 30, 1.5, 6);
  const LinearSvm a = fit_linear_svm(x, y, 3, 0.1), b = fit_linear_svm(x, y, 3, 0.1);
  CHECK(a.w == b.w);
  CHECK(a.epochs >= 1);

  const std::vector<double> grid{0.001, 0.1, 10.0};
  const SelectedSvm s = fit_svm_selected(x, y, 3, grid);
  REQUIRE(s.validation.size() == grid.size());
  size_t best = 0;
  for (size_t g = 1; g < grid.size(); ++g)
    if (s.validation[g] > s.validation[best]) best = g;
  CHECK(s.svm.c == grid[best]);
  for (double v : s.validation) CHECK((v >= 0 && v <= 1));
  // The final model is refitted on every row with the chosen C.
  CHECK(s.svm.w == fit_linear_svm(x, y, 3, grid[best]).w);

  CHECK_THAT(testing::error_of([&] { fit_linear_svm(x, y, 3, 0.0); }), Contains("C must be positive"));
  CHECK_THAT(testing::error_of([&] { fit_linear_svm(x, y, 2, 1.0); }), Contains("label 2 of row 60"));
  CHECK_THAT(testing::error_of([&] { fit_linear_svm(x, narrow(y, 0, 0, 10), 3, 1.0); }),
             Contains("expected features [N, D] and labels [N]"));
  CHECK_THAT(testing::error_of([&] { fit_svm_selected(x, y, 3, {}); }), Contains("empty grid"));
  CHECK_THAT(testing::error_of([&] { a.predict(zeros({2, 5})); }), Contains("expected [N, 2] features"));
}

TEST_CASE("DannNet: label_hidden is G_y without its last layer", "[dann][svm]") {
  manual_seed(11);
  DannNet net;
  const Tensor f = net.features(rand({3, 3, 28, 28}));
  const Tensor h = net.label_hidden(f);
  CHECK(h.shape() == Shape{3, 100});
  CHECK(amin(h).item() >= 0.0);  // after a ReLU
  const auto& layers = static_cast<const nn::Sequential&>(*net.label_net);
  CHECK(max_abs_diff(layers[layers.size() - 1]->forward(h), net.classify(f)) == 0.0);
  CHECK(extract_label_hidden(net, rand({5, 3, 28, 28}), kCPU, 2).shape() == Shape{5, 100});
}

TEST_CASE("dann study: the SVM rows replace the label predictor's accuracies", "[dann][study][svm]") {
  RunResult a{"dann-s1", "dann", 1, 100, 0.97, 0.50, 1.5, 0.96, 0.55};
  RunResult b{"source-only-s1", "source-only", 1, 100, 0.98, 0.40, 1.9, 0.97, 0.35};
  const auto svm = with_svm_accuracies({a, b});
  REQUIRE(svm.has_value());
  CHECK((*svm)[0].source_accuracy == 0.96);
  CHECK((*svm)[0].target_accuracy == 0.55);
  CHECK((*svm)[1].target_accuracy == 0.35);
  CHECK((*svm)[1].proxy_a_distance == 1.9);
  b.svm_target_accuracy.reset();
  CHECK_FALSE(with_svm_accuracies({a, b}).has_value());
}
