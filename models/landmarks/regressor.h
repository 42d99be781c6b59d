#pragma once
// From unsupervised landmarks to annotated points (thesis chapter 4, section 4.3): a bias-free
// linear map y = W x from the 2K detected coordinates to the 2P annotated ones, fitted by
// ridge-regularised least squares on N labelled images (the detector stays frozen), and the
// metric of the thesis: the mean point error as a fraction of the inter-ocular distance.
//
// Layout: detected landmarks N x K x 2 and points N x P x 2, (x, y) in input pixels; the
// regressor is a 2K x 2P float64 matrix acting on the flattened rows: Y = X W.
#include <cstdint>

#include "core/tensor.h"

namespace cvg::landmarks {

// Solves min_W |X W - Y|^2 + ridge * s |W|^2 in float64 on the CPU, where X is N x 2K, Y is
// N x 2P and s = trace(X^T X) / 2K makes `ridge` scale-free. With N < 2K (one labelled image)
// the ridge term picks the smallest-norm solution among the exact fits.
Tensor fit_linear_regressor(const Tensor& detected, const Tensor& points, double ridge = 1e-4);

// Y = X W as N x P x 2 (float64, CPU).
Tensor apply_regressor(const Tensor& regressor, const Tensor& detected);

// Mean over images and points of |pred - truth| / |truth[left_eye] - truth[right_eye]|.
double iod_error(const Tensor& pred, const Tensor& truth, int64_t left_eye, int64_t right_eye);

// The mean-shape baseline: every image predicted as the mean of `train_points` (N x P x 2).
Tensor mean_shape(const Tensor& train_points);

}  // namespace cvg::landmarks
