#include "nn/viz/draw.h"

#include <algorithm>
#include <cmath>

#include "nn/data/dataset.h"
#include "nn/viz/png.h"

namespace cvg::viz {

namespace {

// The canvas checked: uint8 [H, W, 3], contiguous, CPU.
uint8_t* pixels(const Tensor& canvas, const char* op) {
  CVG_CHECK(canvas.defined() && canvas.dtype() == DType::uint8 && canvas.dim() == 3 && canvas.size(2) == 3,
            op, ": the canvas must be a uint8 [H, W, 3] image (see to_rgb), got ",
            canvas.defined() ? str_cat(dtype_name(canvas.dtype()), " ", canvas.shape()) : "undefined");
  CVG_CHECK(canvas.device().is_cpu() && canvas.is_contiguous(), op,
            ": the canvas must be a contiguous CPU tensor");
  return canvas.data<uint8_t>();
}

void put(uint8_t* p, int64_t h, int64_t w, int64_t x, int64_t y, Color c) {
  if (x < 0 || y < 0 || x >= w || y >= h) return;
  uint8_t* q = p + (y * w + x) * 3;
  q[0] = c.r;
  q[1] = c.g;
  q[2] = c.b;
}

int64_t px(double v) { return static_cast<int64_t>(std::floor(v + 0.5)); }

std::vector<std::pair<double, double>> point_list(const Tensor& xy, const char* op) {
  CVG_CHECK(xy.dim() == 2 && xy.size(1) == 2, op, ": points must be a [N, 2] tensor of (x, y), got shape ",
            xy.shape());
  const std::vector<double> v = xy.detach().to(kCPU).to(DType::float64).to_vector<double>();
  std::vector<std::pair<double, double>> out;
  for (size_t i = 0; i + 1 < v.size(); i += 2) out.emplace_back(v[i], v[i + 1]);
  return out;
}

}  // namespace

Color palette(int64_t i) {
  static constexpr Color colors[] = {{230, 25, 75},  {60, 180, 75},  {0, 130, 200}, {245, 130, 48},
                                     {145, 30, 180}, {70, 240, 240}, {240, 50, 230}, {210, 245, 60},
                                     {255, 225, 25}, {128, 128, 0}};
  const int64_t n = 10;
  return colors[((i % n) + n) % n];
}

Tensor to_rgb(const Tensor& image) {
  const Tensor hwc = to_hwc_u8(image);
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
  Tensor out = Tensor::empty({h, w, 3}, TensorOptions{}.with_dtype(DType::uint8));
  const uint8_t* in = hwc.data<uint8_t>();
  uint8_t* o = out.data<uint8_t>();
  for (int64_t p = 0; p < h * w; ++p)
    for (int64_t k = 0; k < 3; ++k) o[p * 3 + k] = in[p * c + (c == 1 ? 0 : k)];
  return out;
}

void draw_point(const Tensor& canvas, double x, double y, Color c, int radius) {
  uint8_t* p = pixels(canvas, "draw_point");
  const int64_t h = canvas.size(0), w = canvas.size(1), cx = px(x), cy = px(y);
  for (int64_t dy = -radius; dy <= radius; ++dy)
    for (int64_t dx = -radius; dx <= radius; ++dx)
      if (dx * dx + dy * dy <= int64_t(radius) * radius) put(p, h, w, cx + dx, cy + dy, c);
}

void draw_cross(const Tensor& canvas, double x, double y, Color c, int arm) {
  uint8_t* p = pixels(canvas, "draw_cross");
  const int64_t h = canvas.size(0), w = canvas.size(1), cx = px(x), cy = px(y);
  for (int64_t d = -arm; d <= arm; ++d) {
    put(p, h, w, cx + d, cy, c);
    put(p, h, w, cx, cy + d, c);
  }
}

void draw_line(const Tensor& canvas, double x0d, double y0d, double x1d, double y1d, Color c) {
  uint8_t* p = pixels(canvas, "draw_line");
  const int64_t h = canvas.size(0), w = canvas.size(1);
  if (!std::isfinite(x0d) || !std::isfinite(y0d) || !std::isfinite(x1d) || !std::isfinite(y1d)) return;
  // Clip the segment to the canvas (plus a pixel of margin) first (Liang-Barsky), so that far
  // endpoints cost nothing and keep the line's direction; then Bresenham between the rounded
  // endpoints.
  double t0 = 0.0, t1 = 1.0;
  const double ddx = x1d - x0d, ddy = y1d - y0d;
  auto clip = [&](double p, double q) {  // keeps the part where p * t <= q
    if (p == 0) return q >= 0;
    const double r = q / p;
    if (p < 0) t0 = std::max(t0, r);
    else t1 = std::min(t1, r);
    return t0 <= t1;
  };
  const double lo = -1.0, hx = static_cast<double>(w), hy = static_cast<double>(h);
  if (!clip(-ddx, x0d - lo) || !clip(ddx, hx - x0d) || !clip(-ddy, y0d - lo) || !clip(ddy, hy - y0d)) return;
  int64_t x0 = px(x0d + t0 * ddx), y0 = px(y0d + t0 * ddy);
  const int64_t x1 = px(x0d + t1 * ddx), y1 = px(y0d + t1 * ddy);
  const int64_t dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int64_t sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int64_t err = dx + dy;
  for (;;) {
    put(p, h, w, x0, y0, c);
    if (x0 == x1 && y0 == y1) break;
    const int64_t e2 = 2 * err;
    if (e2 >= dy) { err += dy; x0 += sx; }
    if (e2 <= dx) { err += dx; y0 += sy; }
  }
}

void draw_box(const Tensor& canvas, double x0, double y0, double x1, double y1, Color c) {
  draw_line(canvas, x0, y0, x1, y0, c);
  draw_line(canvas, x1, y0, x1, y1, c);
  draw_line(canvas, x1, y1, x0, y1, c);
  draw_line(canvas, x0, y1, x0, y0, c);
}

void draw_points(const Tensor& canvas, const Tensor& xy, Color c, int radius) {
  for (const auto& [x, y] : point_list(xy, "draw_points")) draw_point(canvas, x, y, c, radius);
}

Tensor side_by_side(const Tensor& a_in, const Tensor& b_in, int64_t gap) {
  CVG_CHECK(gap >= 0, "side_by_side: gap must be non-negative, got ", gap);
  const Tensor a = to_rgb(a_in), b = to_rgb(b_in);
  const int64_t h = std::max(a.size(0), b.size(0)), w = a.size(1) + gap + b.size(1);
  Tensor out = full({h, w, 3}, 255, TensorOptions{}.with_dtype(DType::uint8));
  uint8_t* o = out.data<uint8_t>();
  auto paste = [&](const Tensor& img, int64_t x_off) {
    const uint8_t* in = img.data<uint8_t>();
    for (int64_t y = 0; y < img.size(0); ++y)
      std::copy(in + y * img.size(1) * 3, in + (y + 1) * img.size(1) * 3, o + (y * w + x_off) * 3);
  };
  paste(a, 0);
  paste(b, a.size(1) + gap);
  return out;
}

Tensor draw_matches(const Tensor& a, const Tensor& b, const Tensor& xy_a, const Tensor& xy_b,
                    int64_t gap, const Color* color) {
  const auto pa = point_list(xy_a, "draw_matches"), pb = point_list(xy_b, "draw_matches");
  CVG_CHECK(pa.size() == pb.size(), "draw_matches: ", pa.size(), " points in a but ", pb.size(), " in b");
  Tensor canvas = side_by_side(a, b, gap);
  const double x_off = static_cast<double>(to_hwc_u8(a).size(1) + gap);
  for (size_t i = 0; i < pa.size(); ++i) {
    const Color c = color ? *color : palette(static_cast<int64_t>(i));
    draw_line(canvas, pa[i].first, pa[i].second, pb[i].first + x_off, pb[i].second, c);
    draw_cross(canvas, pa[i].first, pa[i].second, c, 2);
    draw_cross(canvas, pb[i].first + x_off, pb[i].second, c, 2);
  }
  return canvas;
}

Tensor make_grid(const TensorList& images, int64_t columns, int64_t padding, Color bg) {
  CVG_CHECK(!images.empty(), "make_grid: no images");
  CVG_CHECK(columns >= 0 && padding >= 0, "make_grid: columns and padding must be non-negative");
  std::vector<Tensor> rgb;
  int64_t ch = 0, cw = 0;
  for (const Tensor& img : images) {
    rgb.push_back(to_rgb(img));
    ch = std::max(ch, rgb.back().size(0));
    cw = std::max(cw, rgb.back().size(1));
  }
  const int64_t n = static_cast<int64_t>(rgb.size());
  const int64_t cols = columns > 0 ? std::min(columns, n)
                                   : static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t H = rows * ch + (rows + 1) * padding, W = cols * cw + (cols + 1) * padding;
  Tensor out = Tensor::empty({H, W, 3}, TensorOptions{}.with_dtype(DType::uint8));
  uint8_t* o = out.data<uint8_t>();
  for (int64_t p = 0; p < H * W; ++p) {
    o[3 * p] = bg.r;
    o[3 * p + 1] = bg.g;
    o[3 * p + 2] = bg.b;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y0 = padding + (i / cols) * (ch + padding), x0 = padding + (i % cols) * (cw + padding);
    const Tensor& img = rgb[i];
    const uint8_t* in = img.data<uint8_t>();
    for (int64_t y = 0; y < img.size(0); ++y)
      std::copy(in + y * img.size(1) * 3, in + (y + 1) * img.size(1) * 3, o + ((y0 + y) * W + x0) * 3);
  }
  return out;
}

Tensor make_grid(const Tensor& batch, int64_t columns, int64_t padding, Color bg) {
  CVG_CHECK(batch.dim() == 3 || batch.dim() == 4, "make_grid: expected a batch [N, C, H, W], [N, H, W] "
            "(float) or [N, H, W, C] (uint8), got shape ", batch.shape());
  TensorList images;
  for (int64_t i = 0; i < batch.size(0); ++i) images.push_back(data::row(batch, i));
  return make_grid(images, columns, padding, bg);
}

}  // namespace cvg::viz
