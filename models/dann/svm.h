#pragma once
// The thesis's evaluation protocol for Table 5.I (Ganin, section 5.4; project notes section 3.3,
// "Baselines"): "for every method the last layer is retrained as a linear SVM". The SVM learns
// from the activations of G_y's last hidden layer (FC100 - ReLU, 100 values per image) on the
// labelled training images the method has: source digits for dann and source-only, target digits
// for target-only. The thesis does not say which linear SVM; this one is:
//
//   one-vs-rest, class k scores s_k(x) = w_k . [z(x); 1]  (the bias is the weight of a constant
//   feature, so it is regularised like the rest), predicted class = argmax_k s_k, first on ties;
//   z(x) = (x - mean) / sd per feature, with the training rows' mean and (population) sd + 1e-6;
//   each w_k minimises 1/2 |w|^2 + C sum_i max(0, 1 - y_ik w . z_i)^2  (y_ik = +1 for class k,
//   -1 otherwise: the L2-regularised squared hinge, a smooth strictly convex problem),
//   solved in its dual by coordinate descent (Hsieh et al., ICML 2008): for i in a shuffled
//   order, alpha_i <- max(0, alpha_i - G_i / (|z_i|^2 + 1 / (2C))) with
//   G_i = y_i w . z_i - 1 + alpha_i / (2C), and w = sum_i alpha_i y_i z_i kept up to date; it
//   stops when the largest projected |G_i| of a sweep falls below `tol`, or after `max_epochs`.
//
// C is not given either: fit_svm_selected picks it from a grid by accuracy on a held-out fifth of
// the training rows (every fifth row; the first C wins ties), then refits on all rows. Nothing
// of the test sets or of the other domain's labels is used. Deterministic: the sweep order comes
// from a fixed-seed generator.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace cvg::dann {

struct LinearSvm {
  int64_t classes = 0, dim = 0;
  double c = 0;
  std::vector<double> mean, sd;  // dim each
  std::vector<double> w;         // classes x (dim + 1), row k = [w_k; bias_k]
  int64_t epochs = 0;            // sweeps used by the slowest class
  // x: [N, dim] (any floating dtype, any device) -> predicted classes [N] (int64, CPU).
  Tensor predict(const Tensor& x) const;
  double accuracy(const Tensor& x, const Tensor& y) const;
};

// x: [N, D] features, y: [N] integer labels in [0, classes). c > 0.
LinearSvm fit_linear_svm(const Tensor& x, const Tensor& y, int64_t classes, double c,
                         int64_t max_epochs = 1000, double tol = 1e-3);

// The grid of C tried by the thesis-protocol evaluation (cvg-dann eval).
inline const std::vector<double>& svm_c_grid() {
  static const std::vector<double> grid{0.001, 0.01, 0.1, 1.0};
  return grid;
}

struct SelectedSvm {
  LinearSvm svm;                  // refitted on all rows with the chosen C
  std::vector<double> validation;  // held-out accuracy per grid entry
};
SelectedSvm fit_svm_selected(const Tensor& x, const Tensor& y, int64_t classes,
                             const std::vector<double>& grid);

}  // namespace cvg::dann
