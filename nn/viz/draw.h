#pragma once
// Drawing on RGB images for people to look at: points, crosses, lines, boxes, grids of images,
// pairs side by side with match lines. Canvases are uint8 [H, W, 3] tensors on the CPU (make one
// with to_rgb); the draw_* functions modify the canvas they are given (a Tensor is a handle).
// Coordinates are pixels, x to the right and y down, pixel (x, y) covering [x, x+1) x [y, y+1)
// and rounded to the nearest pixel; anything outside the canvas is clipped, never an error.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg::viz {

struct Color {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Color&) const = default;
};
inline constexpr Color kRed{230, 25, 75}, kGreen{60, 180, 75}, kBlue{0, 130, 200},
    kYellow{255, 225, 25}, kWhite{255, 255, 255}, kBlack{0, 0, 0};
// Colour i of a 10-colour palette of well-separated hues (wraps around).
Color palette(int64_t i);

// Any image accepted by to_hwc_u8 (nn/viz/png.h) as a fresh uint8 [H, W, 3] canvas: gray is
// replicated, alpha dropped.
Tensor to_rgb(const Tensor& image);

void draw_point(const Tensor& canvas, double x, double y, Color c, int radius = 2);  // filled disc
void draw_cross(const Tensor& canvas, double x, double y, Color c, int arm = 3);     // '+' shape
void draw_line(const Tensor& canvas, double x0, double y0, double x1, double y1, Color c);
void draw_box(const Tensor& canvas, double x0, double y0, double x1, double y1, Color c);  // outline
// Points given as a float tensor [N, 2] of (x, y).
void draw_points(const Tensor& canvas, const Tensor& xy, Color c, int radius = 2);

// `a` and `b` (any accepted images) next to each other on one canvas with `gap` white columns
// between them; the shorter one is padded at the bottom with white.
Tensor side_by_side(const Tensor& a, const Tensor& b, int64_t gap = 4);
// side_by_side plus a line from xy_a[i] in `a` to xy_b[i] in `b` for each match i, each in
// palette(i) (or all in `color` when given), with a cross at both ends.
Tensor draw_matches(const Tensor& a, const Tensor& b, const Tensor& xy_a, const Tensor& xy_b,
                    int64_t gap = 4, const Color* color = nullptr);

// N images (a [N, C, H, W] or [N, H, W] float tensor, a [N, H, W, C] uint8 tensor, or a list of
// accepted images) tiled row by row into one RGB canvas, `columns` per row (0: ceil(sqrt(N))),
// `padding` pixels of `background` around and between cells; cells take the largest image size
// and smaller images sit at their top-left.
Tensor make_grid(const TensorList& images, int64_t columns = 0, int64_t padding = 2,
                 Color background = kWhite);
Tensor make_grid(const Tensor& batch, int64_t columns = 0, int64_t padding = 2,
                 Color background = kWhite);

}  // namespace cvg::viz
