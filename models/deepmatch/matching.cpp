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
#include "kernels/reduce.h"
#include "kernels/view.h"

namespace cvg::deepmatch {

std::vector<Match> decode_matches(const Tensor& q0, const DmGeometry& geo) {
  CVG_CHECK(q0.dim() == 4 && q0.size(2) == q0.size(3) && q0.size(2) == geo.k0(),
            "decode_matches: expected H0 x W0 x K x K with K = ", geo.k0(), ", got ", q0.shape());
  const Tensor q = q0.to(kCPU).to(DType::float32).contiguous();
  const int64_t rows = q.size(0), cols = q.size(1), k = q.size(2), kk = k * k;
  const float* p = q.data<float>();
  std::vector<Match> out;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const float* s = p + (i * cols + j) * kk;
      int64_t best = 0;
      for (int64_t t = 1; t < kk; ++t)
        if (s[t] > s[best]) best = t;
      if (!(s[best] > -std::numeric_limits<float>::infinity())) continue;
      Match m;
      m.x0 = static_cast<float>(geo.offset + geo.stride * j);
      m.y0 = static_cast<float>(geo.offset + geo.stride * i);
      m.x1 = m.x0 + static_cast<float>(best % k - geo.radius);
      m.y1 = m.y0 + static_cast<float>(best / k - geo.radius);
      m.score = s[best];
      out.push_back(m);
    }
  return out;
}

std::vector<Match> reciprocal(const std::vector<Match>& forward, const std::vector<Match>& backward,
                              const DmGeometry& geo, int64_t w1, int64_t h1) {
  const int64_t rows = geo.grid_rows(h1), cols = geo.grid_cols(w1);
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

Tensor densify(const std::vector<Match>& matches, int64_t h, int64_t w, double radius) {
  std::vector<float> flow(static_cast<size_t>(2 * h * w), 0.0f);
  if (!matches.empty()) {
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const Match* best = nullptr;
        const Match* nearest = nullptr;
        double best_d2 = std::numeric_limits<double>::infinity();
        for (const Match& m : matches) {
          const double dx = m.x0 - x, dy = m.y0 - y;
          if (std::max(std::abs(dx), std::abs(dy)) <= radius && (!best || m.score > best->score)) best = &m;
          const double d2 = dx * dx + dy * dy;
          if (d2 < best_d2) best_d2 = d2, nearest = &m;
        }
        const Match* m = best ? best : nearest;
        const size_t i = static_cast<size_t>(y * w + x);
        flow[i] = m->x1 - m->x0;
        flow[static_cast<size_t>(h * w) + i] = m->y1 - m->y0;
      }
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
  r.forward = decode_matches(select(net.match_volume(d0, d1, max_bytes), 0, 0), geo);
  r.timing.forward = lap();
  const std::vector<Match> backward = decode_matches(select(net.match_volume(d1, d0, max_bytes), 0, 0), geo);
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
