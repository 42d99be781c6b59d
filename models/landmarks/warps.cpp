#include "models/landmarks/warps.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/matmul.h"
#include "kernels/pool.h"
#include "kernels/sample.h"
#include "kernels/shape.h"
#include "kernels/unary.h"
#include "kernels/view.h"

namespace cvg::landmarks {

Tensor tps_control_points(int64_t per_side, TensorOptions options) {
  CVG_CHECK(per_side >= 2, "tps_control_points: need at least 2 points per side, got ", per_side);
  const Tensor t = linspace(-1.0, 1.0, per_side, options);
  const Tensor xs = expand(reshape(t, {1, per_side}), {per_side, per_side});
  const Tensor ys = expand(reshape(t, {per_side, 1}), {per_side, per_side});
  return reshape(stack({xs, ys}, -1), {per_side * per_side, 2});
}

Tensor random_tps_params(int64_t n, const WarpOptions& o, double strength, Device device) {
  CVG_CHECK(n >= 1 && strength >= 0, "random_tps_params: need n >= 1 and strength >= 0, got n=", n,
            " strength=", strength);
  NoGradGuard no_grad;
  const TensorOptions opts = TensorOptions{}.with_device(device);
  const int64_t k = o.control_grid * o.control_grid;
  // Kernel weights: small everywhere, and a random subset (big_fraction) redrawn larger.
  const Tensor small = randn({n, k, 2}, opts) * (o.kernel_std * strength);
  const Tensor big = randn({n, k, 2}, opts) * (o.kernel_std_big * strength);
  const Tensor pick = lt(rand({n, k, 2}, opts), full({}, o.big_fraction, opts));
  const Tensor weights = where(pick, big, small);
  // Affine part: rows for 1 (translation), x and y (scaled rotation), as in warps.h.
  const double deg = M_PI / 180.0;
  const Tensor theta = randn({n}, opts) * (o.rotation_std_deg * deg * strength);
  const Tensor s = randn({n}, opts) * (o.scale_std * strength) + 1.0;
  const Tensor t = randn({n, 1, 2}, opts) * (o.translation_std * strength);
  const Tensor c = s * cos(theta), sn = s * sin(theta);
  const Tensor row_x = stack({c, -sn}, -1), row_y = stack({sn, c}, -1);  // n x 2 each
  return cat({weights, t, unsqueeze(row_x, 1), unsqueeze(row_y, 1)}, 1);
}

namespace {

// The S*S x (K + 3) basis F of the weights form (kernels/tps.h, tps_grid_weights): row p = i S + j
// holds U2(|p - c_k|^2) for the K control points, then 1, x, y, at pixel centres x = (2 j + 1) / S
// - 1 (align_corners=false). Warps are drawn every step at the same size, so F is built once per
// (size, control grid, device, dtype) and each grid is then a single matmul F @ params.
Tensor weights_basis(int64_t size, int64_t per_side, const Tensor& like) {
  using Key = std::tuple<int64_t, int64_t, std::string, int>;
  static std::mutex mu;
  static std::map<Key, Tensor> cache;
  const Key key{size, per_side, like.device().str(), static_cast<int>(like.dtype())};
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const int64_t k = per_side * per_side, cols = k + 3;
  const std::vector<double> ctrl =
      tps_control_points(per_side, TensorOptions{}.with_dtype(DType::float64)).to_vector<double>();
  std::vector<double> f(static_cast<size_t>(size * size * cols));
  for (int64_t i = 0; i < size; ++i)
    for (int64_t j = 0; j < size; ++j) {
      const double x = (2.0 * static_cast<double>(j) + 1.0) / static_cast<double>(size) - 1.0;
      const double y = (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(size) - 1.0;
      double* row = &f[static_cast<size_t>((i * size + j) * cols)];
      for (int64_t c = 0; c < k; ++c) {
        const double dx = x - ctrl[2 * c], dy = y - ctrl[2 * c + 1], r2 = dx * dx + dy * dy;
        row[c] = r2 * std::log(r2 + 1e-5);
      }
      row[k] = 1.0;
      row[k + 1] = x;
      row[k + 2] = y;
    }
  const Tensor basis = from_vector(f, {size * size, cols}, TensorOptions{}.with_dtype(DType::float64))
                           .to(like.dtype())
                           .to(like.device());
  cache.emplace(key, basis);
  return basis;
}

}  // namespace

Tensor warp_grid(const Tensor& params, int64_t size, int64_t control_grid) {
  const int64_t k = control_grid * control_grid;
  CVG_CHECK(params.dim() == 3 && params.size(1) == k + 3 && params.size(2) == 2,
            "warp_grid: params must be N x ", k + 3, " x 2 for a ", control_grid, " x ",
            control_grid, " control grid, got ", params.shape());
  const Tensor grid = matmul(weights_basis(size, control_grid, params), params);  // N x S*S x 2
  return reshape(grid, {params.size(0), size, size, 2});
}

Tensor grid_to_cropped_pixels(const Tensor& grid, int64_t size, int64_t crop) {
  // align_corners=false: normalised g covers pixel borders, so pixel = (g + 1) / 2 * S - 0.5.
  const double s = static_cast<double>(size);
  const Tensor px = (grid + 1.0) * (0.5 * s) - (0.5 + static_cast<double>(crop));
  return narrow(narrow(px, 1, crop, size - 2 * crop), 2, crop, size - 2 * crop);
}

Tensor grid_to_output_pixels(const Tensor& pixel_grid) {
  const Tensor planes = permute(pixel_grid, {0, 3, 1, 2});  // N x 2 x H x W
  const Tensor pooled = avg_pool2d(planes, {2, 2});
  return permute((pooled - 0.5) * 0.5, {0, 2, 3, 1});
}

Triplet make_triplets(const Tensor& images, int64_t crop, const WarpOptions& o) {
  CVG_CHECK(images.dim() == 4 && images.size(2) == images.size(3),
            "make_triplets: images must be N x C x S x S, got shape ", images.shape());
  const int64_t n = images.size(0), size = images.size(2), out = size - 2 * crop;
  CVG_CHECK(crop >= 0 && out >= 2 && out % 2 == 0, "make_triplets: image size ", size,
            " minus twice the crop ", crop, " must be a positive even size, got ", out);
  NoGradGuard no_grad;
  const Device dev = images.device();
  const Tensor g1 = warp_grid(random_tps_params(n, o, o.first_strength, dev), size, o.control_grid);
  const Tensor g2 = warp_grid(random_tps_params(n, o, 1.0, dev), size, o.control_grid);
  // Border padding: pixels pulled from outside the render repeat its edge instead of turning
  // black, so the crop hides less of the warp.
  const Tensor full1 = grid_sample(images, g1, GridSampleMode::Bilinear, GridPadding::Border);
  const Tensor full2 = grid_sample(full1, g2, GridSampleMode::Bilinear, GridPadding::Border);
  auto cropped = [&](const Tensor& t) {
    return narrow(narrow(t, 2, crop, out), 3, crop, out).contiguous();
  };
  Triplet tr;
  tr.x = cropped(full1);
  tr.x2 = cropped(full2);
  tr.grid = grid_to_output_pixels(grid_to_cropped_pixels(g2, size, crop)).contiguous();
  return tr;
}

Tensor warp_points(const Tensor& pixel_grid, const Tensor& points) {
  CVG_CHECK(pixel_grid.dim() == 4 && pixel_grid.size(3) == 2 && points.dim() == 3 &&
                points.size(2) == 2 && points.size(0) == pixel_grid.size(0),
            "warp_points: expected pixel_grid N x H x W x 2 and points N x P x 2, got ",
            pixel_grid.shape(), " and ", points.shape());
  const int64_t n = pixel_grid.size(0), h = pixel_grid.size(1), w = pixel_grid.size(2),
                np = points.size(1);
  CVG_CHECK(h >= 2 && w >= 2, "warp_points: the grid must be at least 2 x 2, got ", h, "x", w);
  const std::vector<double> g = pixel_grid.to(kCPU).to(DType::float64).contiguous().to_vector<double>();
  std::vector<double> q = points.to(kCPU).to(DType::float64).contiguous().to_vector<double>();
  for (int64_t b = 0; b < n; ++b) {
    const double* gb = &g[static_cast<size_t>(b * h * w * 2)];
    auto at = [&](int64_t i, int64_t j, int c) { return gb[(i * w + j) * 2 + c]; };
    for (int64_t k = 0; k < np; ++k) {
      double* pt = &q[static_cast<size_t>((b * np + k) * 2)];
      const double tx = pt[0], ty = pt[1];
      double x = std::clamp(tx, 0.0, static_cast<double>(w - 1));
      double y = std::clamp(ty, 0.0, static_cast<double>(h - 1));
      for (int it = 0; it < 20; ++it) {
        // Bilinear cell containing (x, y) and the interpolant's value and Jacobian there.
        const int64_t j0 = std::min<int64_t>(static_cast<int64_t>(std::floor(x)), w - 2);
        const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(y)), h - 2);
        const double fx = x - static_cast<double>(j0), fy = y - static_cast<double>(i0);
        double v[2], dx[2], dy[2];
        for (int c = 0; c < 2; ++c) {
          const double a = at(i0, j0, c), bq = at(i0, j0 + 1, c), cq = at(i0 + 1, j0, c),
                       d = at(i0 + 1, j0 + 1, c);
          v[c] = (1 - fy) * ((1 - fx) * a + fx * bq) + fy * ((1 - fx) * cq + fx * d);
          dx[c] = (1 - fy) * (bq - a) + fy * (d - cq);
          dy[c] = (1 - fx) * (cq - a) + fx * (d - bq);
        }
        const double rx = v[0] - tx, ry = v[1] - ty;
        const double det = dx[0] * dy[1] - dy[0] * dx[1];
        if (std::abs(det) < 1e-12) break;
        // Newton step: solve J [sx, sy] = r with J = [[dx0, dy0], [dx1, dy1]].
        const double sx = (dy[1] * rx - dy[0] * ry) / det;
        const double sy = (-dx[1] * rx + dx[0] * ry) / det;
        x = std::clamp(x - sx, 0.0, static_cast<double>(w - 1));
        y = std::clamp(y - sy, 0.0, static_cast<double>(h - 1));
        if (std::abs(sx) + std::abs(sy) < 1e-9) break;
      }
      pt[0] = x;
      pt[1] = y;
    }
  }
  return from_vector(q, {n, np, 2}, TensorOptions{}.with_dtype(DType::float64));
}

}  // namespace cvg::landmarks
