#include "models/landmarks/losses.h"

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/pool.h"
#include "kernels/reduce.h"
#include "kernels/sample.h"
#include "kernels/shape.h"
#include "kernels/unary.h"
#include "kernels/view.h"

namespace cvg::landmarks {

namespace {

void check_maps(const char* op, const char* name, const Tensor& p) {
  CVG_CHECK(p.dim() == 4, op, ": ", name, " must be N x K x h x w probability maps, got shape ",
            p.shape());
}

void check_pair(const char* op, const Tensor& p, const Tensor& p2, const Tensor& grid) {
  check_maps(op, "p", p);
  check_maps(op, "p2", p2);
  CVG_CHECK(p.shape() == p2.shape(), op, ": p and p2 must have the same shape, got ", p.shape(),
            " and ", p2.shape());
  const Shape want{p.size(0), p.size(2), p.size(3), 2};
  CVG_CHECK(grid.shape() == want, op, ": grid must be N x h x w x 2 = ", want, ", got ", grid.shape());
}

// Output-pixel coordinates of the h * w positions in row-major order: x = j, y = i.
std::pair<Tensor, Tensor> pixel_coords(int64_t h, int64_t w, const Tensor& like) {
  const TensorOptions o = like.options();
  const Tensor xs = arange(0, static_cast<double>(w), 1.0, o);
  const Tensor ys = arange(0, static_cast<double>(h), 1.0, o);
  return {reshape(expand(reshape(xs, {1, w}), {h, w}), {h * w}),
          reshape(expand(reshape(ys, {h, 1}), {h, w}), {h * w})};
}

// E[c] and E[(c - E[c])^2] over the last dim of the N x K x hw maps q, for coordinates c that
// broadcast against q.
std::pair<Tensor, Tensor> mean_and_spread(const Tensor& q, const Tensor& c) {
  const Tensor m = sum(q * c, {-1}, /*keepdim=*/true);
  const Tensor d = c - m;
  return {m, sum(q * d * d, {-1}, /*keepdim=*/true)};
}

// G interpolated bilinearly at a (N x K x 2, output pixels): N x K x 2.
Tensor grid_at(const Tensor& grid, const Tensor& a) {
  const int64_t h = grid.size(1), w = grid.size(2);
  // align_corners=true puts -1 and 1 on the centres of the first and last pixels, so pixel
  // coordinate c maps to 2 c / (size - 1) - 1 (a size-1 axis maps everything to its one pixel).
  const Tensor scale = tensor({w > 1 ? 2.0 / static_cast<double>(w - 1) : 0.0,
                               h > 1 ? 2.0 / static_cast<double>(h - 1) : 0.0},
                              {2}, grid.options().with_requires_grad(false));
  const Tensor where = unsqueeze(a * scale - 1.0, 2);                     // N x K x 1 x 2
  const Tensor planes = permute(grid, {0, 3, 1, 2});                      // N x 2 x h x w
  const Tensor s = grid_sample(planes, where, GridSampleMode::Bilinear, GridPadding::Border,
                               /*align_corners=*/true);                   // N x 2 x K x 1
  return permute(squeeze(s, 3), {0, 2, 1});
}

}  // namespace

Tensor expected_position(const Tensor& p) {
  check_maps("expected_position", "p", p);
  const int64_t n = p.size(0), k = p.size(1), h = p.size(2), w = p.size(3);
  const Tensor q = reshape(p, {n, k, h * w});
  const auto [ux, uy] = pixel_coords(h, w, p);
  return stack({sum(q * ux, {-1}), sum(q * uy, {-1})}, -1);
}

Tensor equivariance_loss(const Tensor& p, const Tensor& p2, const Tensor& grid) {
  check_pair("equivariance_loss", p, p2, grid);
  const int64_t n = p.size(0), k = p.size(1), h = p.size(2), w = p.size(3);
  const Tensor q = reshape(p, {n, k, h * w}), q2 = reshape(p2, {n, k, h * w});
  const auto [ux, uy] = pixel_coords(h, w, p);
  const Tensor g = reshape(grid, {n, 1, h * w, 2});
  const auto [mx, vx] = mean_and_spread(q, ux);
  const auto [my, vy] = mean_and_spread(q, uy);
  const auto [m2x, v2x] = mean_and_spread(q2, select(g, 3, 0));
  const auto [m2y, v2y] = mean_and_spread(q2, select(g, 3, 1));
  const Tensor dx = mx - m2x, dy = my - m2y;
  return mean(vx + vy + v2x + v2y + dx * dx + dy * dy);
}

Tensor diversity_loss(const Tensor& p, int64_t m) {
  check_maps("diversity_loss", "p", p);
  CVG_CHECK(m >= 1 && p.size(2) % m == 0 && p.size(3) % m == 0,
            "diversity_loss: the maps' h x w = ", p.size(2), "x", p.size(3),
            " must be multiples of the cell size m = ", m);
  const double k = static_cast<double>(p.size(1));
  // Sum-pooling is average pooling times the cell area.
  const Tensor cells = avg_pool2d(p, {m, m}) * static_cast<double>(m * m);  // N x K x h/m x w/m
  const Tensor best = amax(cells, {1});                                     // N x h/m x w/m
  return k - mean(sum(best, {1, 2}));
}

Tensor alignment_loss(const Tensor& p, const Tensor& p2, const Tensor& grid) {
  check_pair("alignment_loss", p, p2, grid);
  const Tensor d = grid_at(grid, expected_position(p2)) - expected_position(p);
  return mean(sum(d * d, {-1}));
}

Tensor equivariance_errors(const Tensor& p, const Tensor& p2, const Tensor& grid) {
  check_pair("equivariance_errors", p, p2, grid);
  NoGradGuard no_grad;
  const Tensor d = grid_at(grid, expected_position(p2)) - expected_position(p);
  return sqrt(sum(d * d, {-1})).to(DType::float64);
}

double equivariance_error(const Tensor& p, const Tensor& p2, const Tensor& grid) {
  return mean(equivariance_errors(p, p2, grid)).item();
}

Tensor map_spread(const Tensor& p) {
  check_maps("map_spread", "p", p);
  NoGradGuard no_grad;
  const int64_t n = p.size(0), k = p.size(1), h = p.size(2), w = p.size(3);
  const Tensor q = reshape(p, {n, k, h * w});
  const auto [ux, uy] = pixel_coords(h, w, p);
  const Tensor vx = mean_and_spread(q, ux).second, vy = mean_and_spread(q, uy).second;
  return sqrt(squeeze(vx + vy, 2)).to(DType::float64);
}

}  // namespace cvg::landmarks
