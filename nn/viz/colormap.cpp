#include "nn/viz/colormap.h"

#include <algorithm>
#include <cmath>

namespace cvg::viz {

Color viridis(double t) {
  // matplotlib's viridis at t = 0.0, 0.1, ..., 1.0 (#440154, #482475, #414487, #355f8d,
  // #2a788e, #21918c, #22a884, #44bf70, #7ad151, #bddf26, #fde725).
  static constexpr uint8_t stops[11][3] = {{68, 1, 84},    {72, 36, 117},  {65, 68, 135},
                                           {53, 95, 141},  {42, 120, 142}, {33, 145, 140},
                                           {34, 168, 132}, {68, 191, 112}, {122, 209, 81},
                                           {189, 223, 38}, {253, 231, 37}};
  if (std::isnan(t)) return {128, 128, 128};
  const double s = std::clamp(t, 0.0, 1.0) * 10.0;
  const int i = std::min(static_cast<int>(s), 9);
  const double f = s - i;
  auto mix = [&](int k) {
    return static_cast<uint8_t>(std::lround((1 - f) * stops[i][k] + f * stops[i + 1][k]));
  };
  return {mix(0), mix(1), mix(2)};
}

Tensor heatmap(const Tensor& values, double vmin, double vmax) {
  CVG_CHECK(values.dim() == 2, "heatmap: expected values [H, W], got shape ", values.shape());
  CVG_CHECK(values.dtype() != DType::bool_, "heatmap: values must be numbers, got bool");
  const std::vector<double> v = values.detach().to(kCPU).to(DType::float64).to_vector<double>();
  double lo = vmin, hi = vmax;
  if (std::isnan(lo) || std::isnan(hi)) {
    double dlo = INFINITY, dhi = -INFINITY;
    for (double x : v)
      if (std::isfinite(x)) {
        dlo = std::min(dlo, x);
        dhi = std::max(dhi, x);
      }
    if (std::isnan(lo)) lo = std::isfinite(dlo) ? dlo : 0.0;
    if (std::isnan(hi)) hi = std::isfinite(dhi) ? dhi : 1.0;
  }
  const int64_t h = values.size(0), w = values.size(1);
  Tensor out = Tensor::empty({h, w, 3}, TensorOptions{}.with_dtype(DType::uint8));
  uint8_t* o = out.data<uint8_t>();
  for (int64_t p = 0; p < h * w; ++p) {
    // A constant field (hi == lo) maps to the middle of the map.
    const double t = std::isfinite(v[p]) ? (hi > lo ? (v[p] - lo) / (hi - lo) : 0.5) : std::nan("");
    const Color c = viridis(t);
    o[3 * p] = c.r;
    o[3 * p + 1] = c.g;
    o[3 * p + 2] = c.b;
  }
  return out;
}

Tensor blend(const Tensor& base, const Tensor& overlay, double alpha) {
  CVG_CHECK(alpha >= 0 && alpha <= 1, "blend: alpha must be in [0, 1], got ", alpha);
  const Tensor a = to_rgb(base), b = to_rgb(overlay);
  CVG_CHECK(a.shape() == b.shape(), "blend: base is ", a.size(0), "x", a.size(1), " but overlay is ",
            b.size(0), "x", b.size(1));
  Tensor out = Tensor::empty(a.shape(), TensorOptions{}.with_dtype(DType::uint8));
  const uint8_t *pa = a.data<uint8_t>(), *pb = b.data<uint8_t>();
  uint8_t* o = out.data<uint8_t>();
  for (int64_t i = 0; i < a.numel(); ++i)
    o[i] = static_cast<uint8_t>(std::lround((1 - alpha) * pa[i] + alpha * pb[i]));
  return out;
}

}  // namespace cvg::viz
