#include "models/deepmatch/matching.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <numbers>

#include "core/autograd.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/view.h"

namespace cvg::deepmatch {

std::vector<Match> decode_matches(const Tensor& q0, const DmGeometry& geo, int64_t target_w, int64_t target_h,
                                  int64_t block_bytes) {
  CVG_CHECK(q0.dim() == 4 && q0.size(2) == q0.size(3) && q0.size(2) == geo.k0(),
            "decode_matches: expected H0 x W0 x K x K with K = ", geo.k0(), ", got ", q0.shape());
  CVG_CHECK(target_w > 0 && target_h > 0, "decode_matches: target image ", target_w, " x ", target_h, " is empty");
  const int64_t rows = q0.size(0), cols = q0.size(1), k = q0.size(2);
  // Targets outside the second image score 0 in S_0 (kernels/deepmatch.h) and can still win
  // after aggregation; a match must land in the image, so they get -inf here: Q_0 plus a bias
  // that is 0 inside and -inf outside, separable in (i, ky) and (j, kx).
  const auto outside_bias = [&](int64_t n, int64_t extent) {
    std::vector<double> b(static_cast<size_t>(n * k), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t t = 0; t < k; ++t) {
        const int64_t pos = geo.offset + geo.stride * i + t - geo.radius;
        if (pos < 0 || pos >= extent) b[static_cast<size_t>(i * k + t)] = -std::numeric_limits<double>::infinity();
      }
    return from_vector(b, {n, k}, TensorOptions{}.with_dtype(q0.dtype())).to(q0.device());
  };
  const Tensor by = outside_bias(rows, target_h), bx = reshape(outside_bias(cols, target_w), {1, cols, 1, k});
  // Blocks of reference rows of at most block_bytes (at least a row), so the masked copy stays
  // small next to Q_0.
  const int64_t row_bytes = cols * k * k * static_cast<int64_t>(dtype_size(q0.dtype()));
  const int64_t block = std::max<int64_t>(1, block_bytes / std::max<int64_t>(1, row_bytes));
  std::vector<Match> out;
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nr = std::min(block, rows - r0);
    const Tensor masked = narrow(q0, 0, r0, nr) + reshape(narrow(by, 0, r0, nr), {nr, 1, k, 1}) + bx;
    // The argmax runs where Q_0 lives, so only one score and one index per point cross to the
    // host (at the thesis's Sintel setting Q_0 is 0.7 GB; its maxima 55 KB).
    const ValuesIndices best = max(reshape(masked, {nr * cols, k * k}), 1);
    const Tensor v = best.values.to(kCPU).to(DType::float32).contiguous();
    const Tensor at = best.indices.to(kCPU).contiguous();
    const float* vp = v.data<float>();
    const int64_t* ip = at.data<int64_t>();
    for (int64_t i = 0; i < nr; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const float score = vp[i * cols + j];
        const int64_t t = ip[i * cols + j];
        if (!(score > -std::numeric_limits<float>::infinity())) continue;  // -inf (or NaN) row
        Match m;
        m.x0 = static_cast<float>(geo.offset + geo.stride * j);
        m.y0 = static_cast<float>(geo.offset + geo.stride * (r0 + i));
        m.x1 = m.x0 + static_cast<float>(t % k - geo.radius);
        m.y1 = m.y0 + static_cast<float>(t / k - geo.radius);
        m.score = score;
        out.push_back(m);
      }
  }
  return out;
}

std::vector<Match> reciprocal(const std::vector<Match>& forward, const std::vector<Match>& backward,
                              const DmGeometry& geo, int64_t w1, int64_t h1) {
  const int64_t rows = geo.grid_rows(h1), cols = geo.grid_cols(w1);
  if (rows <= 0 || cols <= 0) return {};  // no point of I1 to match back from
  // Backward matches by their I1 grid cell (decode_matches may have left some out).
  std::vector<const Match*> cell(static_cast<size_t>(rows * cols), nullptr);
  for (const Match& b : backward) {
    const int64_t i = (static_cast<int64_t>(b.y0) - geo.offset) / geo.stride;
    const int64_t j = (static_cast<int64_t>(b.x0) - geo.offset) / geo.stride;
    if (i >= 0 && i < rows && j >= 0 && j < cols) cell[static_cast<size_t>(i * cols + j)] = &b;
  }
  const double tol = 0.5 * static_cast<double>(geo.stride);
  std::vector<Match> kept;
  for (const Match& f : forward) {
    const auto nearest = [&](double v, int64_t n) {
      return std::clamp<int64_t>(std::lround((v - geo.offset) / geo.stride), 0, n - 1);
    };
    const int64_t i = nearest(f.y1, rows), j = nearest(f.x1, cols);
    const Match* b = cell[static_cast<size_t>(i * cols + j)];
    if (!b) continue;
    const double ex = f.x0 + (b->x0 - f.x1), ey = f.y0 + (b->y0 - f.y1);
    if (std::abs(b->x1 - ex) <= tol && std::abs(b->y1 - ey) <= tol) kept.push_back(f);
  }
  return kept;
}

namespace {

// The matches bucketed by their source position (x0, y0) into square cells of side `side`, each
// cell's indices in increasing order, so that a pixel's candidates are a few cells away.
struct MatchBuckets {
  double x_min = 0, y_min = 0, side = 1;
  int64_t nx = 0, ny = 0;
  std::vector<int64_t> start;  // cell c's matches: order[start[c] .. start[c + 1])
  std::vector<int64_t> order;

  // Cells of side at least `min_side`, and large enough that there are about as many cells as
  // matches (sparse matches over a large area).
  MatchBuckets(const std::vector<Match>& matches, double min_side) {
    double x_max = matches[0].x0, y_max = matches[0].y0;
    x_min = x_max, y_min = y_max;
    for (size_t i = 0; i < matches.size(); ++i) {
      const Match& m = matches[i];
      CVG_CHECK(std::isfinite(m.x0) && std::isfinite(m.y0), "densify: match ", i,
                " has a non-finite position (", m.x0, ", ", m.y0, ")");
      x_min = std::min<double>(x_min, m.x0), x_max = std::max<double>(x_max, m.x0);
      y_min = std::min<double>(y_min, m.y0), y_max = std::max<double>(y_max, m.y0);
    }
    const double area = (x_max - x_min + 1) * (y_max - y_min + 1);
    side = std::max(min_side, std::sqrt(area / static_cast<double>(matches.size())));
    nx = cell_x(x_max) + 1, ny = cell_y(y_max) + 1;
    start.assign(static_cast<size_t>(nx * ny + 1), 0);
    for (const Match& m : matches) ++start[static_cast<size_t>(cell_of(m) + 1)];
    for (size_t c = 1; c < start.size(); ++c) start[c] += start[c - 1];
    order.resize(matches.size());
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (size_t i = 0; i < matches.size(); ++i)
      order[static_cast<size_t>(fill[static_cast<size_t>(cell_of(matches[i]))]++)] =
          static_cast<int64_t>(i);
  }
  // Unclamped cell coordinates (a pixel may lie outside the matches' bounding box).
  int64_t cell_x(double x) const { return static_cast<int64_t>(std::floor((x - x_min) / side)); }
  int64_t cell_y(double y) const { return static_cast<int64_t>(std::floor((y - y_min) / side)); }
  int64_t cell_of(const Match& m) const { return cell_y(m.y0) * nx + cell_x(m.x0); }
  // fn(match index) for every match in the cells [cx0, cx1] x [cy0, cy1] (clipped to the grid).
  template <typename Fn>
  void visit(int64_t cx0, int64_t cx1, int64_t cy0, int64_t cy1, Fn&& fn) const {
    for (int64_t cy = std::max<int64_t>(cy0, 0); cy <= std::min(cy1, ny - 1); ++cy)
      for (int64_t cx = std::max<int64_t>(cx0, 0); cx <= std::min(cx1, nx - 1); ++cx) {
        const size_t c = static_cast<size_t>(cy * nx + cx);
        for (int64_t k = start[c]; k < start[c + 1]; ++k) fn(order[static_cast<size_t>(k)]);
      }
  }
};

}  // namespace

// Equal, pixel for pixel, to scanning every match in order (best: the highest score, the first
// on ties; nearest: the smallest squared distance, the first on ties), which took O(h w matches):
// 2.5 s for one frame at the thesis's Sintel setting. Each pixel now visits the cells within
// `radius`, then, only if none holds a match in reach, rings of cells outwards until no
// unvisited cell can hold a nearer match.
Tensor densify(const std::vector<Match>& matches, int64_t h, int64_t w, double radius) {
  std::vector<float> flow(static_cast<size_t>(2 * h * w), 0.0f);
  if (!matches.empty()) {
    const MatchBuckets cells(matches, std::max(radius, 1.0));
    parallel_for(h, 4, [&](int64_t y_begin, int64_t y_end) {
      for (int64_t y = y_begin; y < y_end; ++y)
        for (int64_t x = 0; x < w; ++x) {
          int64_t best = -1;
          // The cells of [x - reach, x + reach]^2; the margin covers the rounding of the float
          // differences below (at most half an ulp of the radius).
          const double reach = radius * (1 + 1e-6) + 1e-6;
          cells.visit(cells.cell_x(x - reach), cells.cell_x(x + reach), cells.cell_y(y - reach),
                      cells.cell_y(y + reach), [&](int64_t i) {
                        const Match& m = matches[static_cast<size_t>(i)];
                        const double dx = m.x0 - x, dy = m.y0 - y;
                        if (std::max(std::abs(dx), std::abs(dy)) > radius) return;
                        const Match* b = best < 0 ? nullptr : &matches[static_cast<size_t>(best)];
                        if (!b || m.score > b->score || (m.score == b->score && i < best)) best = i;
                      });
          if (best < 0) {
            double best_d2 = std::numeric_limits<double>::infinity();
            const int64_t cx = cells.cell_x(static_cast<double>(x));
            const int64_t cy = cells.cell_y(static_cast<double>(y));
            const int64_t rings = std::max({cx, cells.nx - 1 - cx, cy, cells.ny - 1 - cy});
            const auto consider = [&](int64_t i) {
              const Match& m = matches[static_cast<size_t>(i)];
              const double dx = m.x0 - x, dy = m.y0 - y;
              const double d2 = dx * dx + dy * dy;
              if (d2 < best_d2 || (d2 == best_d2 && i < best)) best_d2 = d2, best = i;
            };
            // Ring r: the cells at Chebyshev distance r from the pixel's cell. Every match in
            // ring r + 1 or beyond is at least r * side away (its squared distance, from
            // rounded differences, at least (r side)^2 (1 - 1e-6)).
            for (int64_t r = 0; r <= rings; ++r) {
              if (r == 0) {
                cells.visit(cx, cx, cy, cy, consider);
              } else {
                cells.visit(cx - r, cx + r, cy - r, cy - r, consider);
                cells.visit(cx - r, cx + r, cy + r, cy + r, consider);
                cells.visit(cx - r, cx - r, cy - r + 1, cy + r - 1, consider);
                cells.visit(cx + r, cx + r, cy - r + 1, cy + r - 1, consider);
              }
              const double bound = static_cast<double>(r) * cells.side;
              if (best >= 0 && best_d2 < bound * bound * (1 - 1e-6)) break;
            }
          }
          const Match& m = matches[static_cast<size_t>(best)];
          const size_t i = static_cast<size_t>(y * w + x);
          flow[i] = m.x1 - m.x0;
          flow[static_cast<size_t>(h * w) + i] = m.y1 - m.y0;
        }
    });
  }
  return from_vector(flow, {2, h, w});
}

void ErrorStats::add(double err) {
  count += 1;
  sum += err;
  within2 += err <= 2;
  within5 += err <= 5;
  within10 += err <= 10;
}

void ErrorStats::merge(const ErrorStats& o) {
  count += o.count, sum += o.sum, within2 += o.within2, within5 += o.within5, within10 += o.within10;
}

double ErrorStats::acc(double t) const {
  if (count <= 0) return 0.0;
  const double n = t <= 2 ? within2 : t <= 5 ? within5 : within10;
  return 100.0 * n / count;
}

namespace {
void check_gt(const char* op, const Tensor& gt, const Tensor& valid) {
  CVG_CHECK(gt.dim() == 3 && gt.size(0) == 2 && valid.dim() == 2 && valid.size(0) == gt.size(1) &&
                valid.size(1) == gt.size(2),
            op, ": expected gt 2 x H x W and valid H x W, got ", gt.shape(), " and ", valid.shape());
}
}  // namespace

ErrorStats flow_errors(const Tensor& flow, const Tensor& gt, const Tensor& valid) {
  check_gt("flow_errors", gt, valid);
  CVG_CHECK(flow.shape() == gt.shape(), "flow_errors: flow ", flow.shape(), " and gt ", gt.shape(), " differ");
  const Tensor f = flow.to(kCPU).to(DType::float32).contiguous(), g = gt.to(kCPU).to(DType::float32).contiguous();
  const Tensor v = valid.to(kCPU).to(DType::uint8).contiguous();
  const int64_t n = v.numel();
  const float *fp = f.data<float>(), *gp = g.data<float>();
  const uint8_t* vp = v.data<uint8_t>();
  ErrorStats s;
  for (int64_t i = 0; i < n; ++i)
    if (vp[i]) s.add(std::hypot(fp[i] - gp[i], fp[n + i] - gp[n + i]));
  return s;
}

ErrorStats match_errors(const std::vector<Match>& matches, const Tensor& gt, const Tensor& valid) {
  check_gt("match_errors", gt, valid);
  const Tensor g = gt.to(kCPU).to(DType::float32).contiguous();
  const Tensor v = valid.to(kCPU).to(DType::uint8).contiguous();
  const int64_t h = v.size(0), w = v.size(1), n = h * w;
  const float* gp = g.data<float>();
  const uint8_t* vp = v.data<uint8_t>();
  ErrorStats s;
  for (const Match& m : matches) {
    const int64_t x = std::lround(m.x0), y = std::lround(m.y0);
    if (x < 0 || y < 0 || x >= w || y >= h || !vp[y * w + x]) continue;
    s.add(std::hypot(m.x1 - m.x0 - gp[y * w + x], m.y1 - m.y0 - gp[n + y * w + x]));
  }
  return s;
}

MatchResult match_pair(DeepMatchNet& net, const Tensor& img0, const Tensor& img1, int64_t max_bytes) {
  CVG_CHECK(img0.dim() == 3 && img0.size(0) == 1 && img1.dim() == 3 && img1.size(0) == 1,
            "match_pair: expected 1 x H x W gray images, got ", img0.shape(), " and ", img1.shape());
  net.geometry().check_image(img0.size(1), img0.size(2),
                             str_cat("image 1 (", img0.size(2), " x ", img0.size(1), ")"));
  net.geometry().check_image(img1.size(1), img1.size(2),
                             str_cat("image 2 (", img1.size(2), " x ", img1.size(1), ")"));
  NoGradGuard no_grad;
  const Device dev = net.device();
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now();
  // Seconds since the last stage ended, the device's queue drained first.
  auto lap = [&] {
    synchronize(dev);
    const Clock::time_point now = Clock::now();
    const double s = std::chrono::duration<double>(now - start).count();
    start = now;
    return s;
  };
  MatchResult r;
  const Tensor d0 = net.descriptors(unsqueeze(img0.to(dev), 0)), d1 = net.descriptors(unsqueeze(img1.to(dev), 0));
  r.timing.descriptors = lap();
  const DmGeometry& geo = net.geometry();
  r.forward = decode_matches(select(net.match_volume(d0, d1, max_bytes), 0, 0), geo, img1.size(2), img1.size(1));
  r.timing.forward = lap();
  const std::vector<Match> backward =
      decode_matches(select(net.match_volume(d1, d0, max_bytes), 0, 0), geo, img0.size(2), img0.size(1));
  r.timing.backward = lap();
  r.verified = reciprocal(r.forward, backward, geo, img1.size(2), img1.size(1));
  r.flow = densify(r.verified, img0.size(1), img0.size(2), static_cast<double>(geo.stride));
  r.timing.readout = lap();
  return r;
}

void write_matches(const std::string& path, const std::vector<Match>& matches) {
  std::ofstream f(path);
  CVG_CHECK(f.good(), "write_matches: cannot write ", path);
  char line[128];
  for (const Match& m : matches) {
    std::snprintf(line, sizeof line, "%g %g %g %g %.6g\n", m.x0, m.y0, m.x1, m.y1, m.score);
    f << line;
  }
  CVG_CHECK(f.good(), "write_matches: error writing ", path);
}

Tensor flow_to_color(const Tensor& flow, double max_flow) {
  CVG_CHECK(flow.dim() == 3 && flow.size(0) == 2, "flow_to_color: expected 2 x H x W, got ", flow.shape());
  const Tensor f = flow.to(kCPU).to(DType::float32).contiguous();
  const int64_t h = f.size(1), w = f.size(2), n = h * w;
  const float* p = f.data<float>();
  if (max_flow <= 0) {
    for (int64_t i = 0; i < n; ++i) max_flow = std::max(max_flow, static_cast<double>(std::hypot(p[i], p[n + i])));
    if (max_flow <= 0) max_flow = 1;
  }
  std::vector<uint8_t> rgb(static_cast<size_t>(3 * n));
  for (int64_t i = 0; i < n; ++i) {
    // HSV with V = 1: hue from the direction, saturation from the length.
    const double hue = (std::atan2(-p[n + i], -p[i]) / std::numbers::pi + 1) * 3;  // [0, 6)
    const double sat = std::min(1.0, std::hypot(p[i], p[n + i]) / max_flow);
    const int sector = static_cast<int>(std::floor(hue)) % 6;
    const double frac = hue - std::floor(hue);
    const double lo = 1 - sat, falling = 1 - sat * frac, rising = 1 - sat * (1 - frac);
    double c[3];
    switch (sector) {
      case 0: c[0] = 1, c[1] = rising, c[2] = lo; break;
      case 1: c[0] = falling, c[1] = 1, c[2] = lo; break;
      case 2: c[0] = lo, c[1] = 1, c[2] = rising; break;
      case 3: c[0] = lo, c[1] = falling, c[2] = 1; break;
      case 4: c[0] = rising, c[1] = lo, c[2] = 1; break;
      default: c[0] = 1, c[1] = lo, c[2] = falling; break;
    }
    for (int ch = 0; ch < 3; ++ch)
      rgb[static_cast<size_t>(3 * i + ch)] = static_cast<uint8_t>(std::lround(255 * std::clamp(c[ch], 0.0, 1.0)));
  }
  return from_vector(rgb, {h, w, 3}, TensorOptions{}.with_dtype(DType::uint8));
}

}  // namespace cvg::deepmatch
