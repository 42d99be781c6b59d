#pragma once
// Colour maps for scalar fields (disparity, attention, error maps).
// viridis: the perceptually uniform map of matplotlib (van der Walt and Smith, 2015), here as
// linear interpolation in RGB between its colours at t = 0, 0.1, ..., 1 (the 11 published
// control points), which stays within a couple of levels of the full 256-entry table.
#include <cmath>

#include "core/tensor.h"
#include "nn/viz/draw.h"

namespace cvg::viz {

// t is clamped to [0, 1]; NaN gives mid gray.
Color viridis(double t);

// values [H, W] (any real dtype) -> uint8 [H, W, 3] through viridis. vmin/vmax default to the
// finite minimum and maximum of `values` (NaN means "use the data"); non-finite values are gray.
Tensor heatmap(const Tensor& values, double vmin = std::nan(""), double vmax = std::nan(""));

// (1 - alpha) * base + alpha * overlay per pixel, both turned into RGB canvases of equal size.
Tensor blend(const Tensor& base, const Tensor& overlay, double alpha);

}  // namespace cvg::viz
