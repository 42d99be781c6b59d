#pragma once
// Random thin-plate-spline warps and the (x, x2, G) training triplets of thesis chapter 4
// (section 4.1; ranges from ../shared/papers/thewlis-objects-from-motion.md section 0).
//
// A warp is the "weights" form of a TPS in normalised coordinates [-1, 1]^2 (kernels/tps.h,
// tps_grid_weights): a 10 x 10 grid of control points c_j, kernel weights W_j and an affine part
//     g(p) = sum_j W_j U(|p - c_j|^2) + t + s R(theta) p,     U(r2) = r2 log(r2 + 1e-5).
// Sampling: W_j ~ N(0, 0.001^2), and a random half of the entries redrawn from N(0, 0.01^2);
// theta ~ N(0, (5 deg)^2), s = 1 + N(0, 0.1^2), t ~ N(0, 0.1^2); every std-dev times `strength`.
// All warping is inverse warping with bilinear sampling: warp(I, g)(p) = I(g(p)).
//
// Triplets (make_triplets): render I at size S = out + 2 crop, then
//     x  = crop(I o g1)            g1 at strength first_strength (0.5: the thesis code's
//                                  im1_multiplier),
//     x2 = crop((I o g1) o g2)     g2 at full strength,
// and G(v) = g2(v) expressed in x's output-pixel coordinates (models/landmarks/losses.h): the
// position in x of output pixel v of x2. Output pixel (i, j) of the stride-2 detector covers
// input pixels 2i..2i+1 x 2j..2j+1, so its centre is input pixel (2 j + 0.5, 2 i + 0.5); G is
// the average of g2 over those four input pixels (exact for the affine part, within the TPS's
// curvature otherwise). Everything runs on the device of the images.
#include <cstdint>

#include "core/tensor.h"

namespace cvg::landmarks {

struct WarpOptions {
  int64_t control_grid = 10;       // control points per side
  double kernel_std = 0.001;       // TPS kernel weights
  double kernel_std_big = 0.01;    // ... for the redrawn half
  double big_fraction = 0.5;
  double rotation_std_deg = 5.0;
  double scale_std = 0.1;
  double translation_std = 0.1;    // normalised units (1 = half the image)
  double first_strength = 0.5;     // g1's std-devs are multiplied by this
};

// The control_grid^2 x 2 control points (x, y), row-major over a uniform grid on [-1, 1]^2.
Tensor tps_control_points(int64_t per_side, TensorOptions options = {});

// n random warps: n x (K + 3) x 2 parameters for tps_grid_weights (K kernel weights, then the
// affine rows for 1, x, y), drawn from the global generator on `device`.
Tensor random_tps_params(int64_t n, const WarpOptions& options, double strength, Device device);

struct Triplet {
  Tensor x, x2;  // N x C x out x out
  Tensor grid;   // N x out/2 x out/2 x 2: G in x's output pixels (losses.h)
};

// images: N x C x S x S with S = out + 2 crop (out even). Draws two warps per image.
Triplet make_triplets(const Tensor& images, int64_t crop, const WarpOptions& options);

// Sampling grid (N x S x S x 2, normalised, align_corners=false) of the given parameters: the
// same values as kernels/tps.h's tps_grid_weights, with the basis cached across calls.
Tensor warp_grid(const Tensor& params, int64_t size, int64_t control_grid);

// Converts a normalised sampling grid over an S x S image into input-pixel coordinates of the
// image cropped by `crop` on every side (pixel (i, j)'s centre at (j, i)).
Tensor grid_to_cropped_pixels(const Tensor& grid, int64_t size, int64_t crop);

// Averages an N x H x W x 2 grid over 2 x 2 blocks and maps input pixels u to output pixels
// (u - 0.5) / 2: the grid at the detector's output resolution.
Tensor grid_to_output_pixels(const Tensor& pixel_grid);

// Where points of a source image land in its warped copy: pixel_grid (N x H x W x 2) holds, for
// every pixel of the warped image, its position in the source (pixels, as
// grid_to_cropped_pixels returns); points (N x P x 2) are source pixels. Returns N x P x 2: the
// p with pixel_grid(p) = q, by Newton's method on the bilinear interpolant of the grid started
// at p = q (the warps are close to the identity), float64 on the CPU. A point whose preimage
// lies outside the warped image is clamped to its border.
Tensor warp_points(const Tensor& pixel_grid, const Tensor& points);

}  // namespace cvg::landmarks
