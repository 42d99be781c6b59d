#pragma once
// Image pairs with exact ground-truth correspondence, for training and evaluating Deep Matching.
//
// Synthetic pairs (the notes' CPU substitute, section 6b). A pair is built from layers: a photo
// background and, for "flying sprites", 2-5 Fashion-MNIST items (alpha = intensity > 0.1) on top.
// Every layer L has two sampling maps into its source image:
//     frame 0:  I0(x) = src_L(map0_L(x))     any map (a homography, or a TPS then a homography)
//     frame 1:  I1(y) = src_L(map1_L(y))     an invertible homography
// so the point x of frame 0 is the point y = map1_L^{-1}(map0_L(x)) of frame 1: the ground truth
// is exact, whatever the interpolation. The layer of x is the topmost one covering x in frame 0
// (alpha > 0.5). Kinds:
//   homography  background only: frame 1 is the photo under a random homography close to the
//               identity (shift <= max_shift, rotation, scale, a little perspective)
//   tps         background only: frame 0 is the photo under a thin-plate spline (kernels/tps.h,
//               3 x 3 control points moved by up to 4 px), frame 1 under a homography
//   sprites     a background affine motion plus 2-5 sprites, each with its own affine motion
//               (the notes' "flying sprites", a Flying Chairs analogue)
// Frame 1 then gets a random gain and bias and both frames pixel noise (SyntheticOptions).
// flow(x) = y - x (dx, dy); valid(x) = y lies inside frame 1 (where a correspondence can be seen;
// occluded points stay valid, as in Sintel's "all" pixels).
// Coordinates: pixel centres at integer (x, y), x to the right, y down. Images are gray [0, 1].
//
// Photos are split by name into a training and a held-out set (PairSource::open), and sprites
// come from Fashion-MNIST's train or t10k file, so held-out pairs share no photo or item with
// training pairs. Pair k of a split is a pure function of (seed, k).
//
// Real pairs (the notes' section 6c): the skimage motorcycle stereo pair (GT disparity, float32,
// non-finite = unknown; (x, y) -> (x - d, y)) and the Middlebury Aloe pair of opencv's samples
// (aloeGT.png: 8-bit disparity of the left view, 0 = unknown), both reduced by an integer factor
// (box filter) so that they run on a CPU.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg::deepmatch {

struct Pair {
  Tensor img0, img1;  // 1 x H x W float32 in [0, 1]
  Tensor flow;        // 2 x H x W float32 (dx, dy)
  Tensor valid;       // H x W uint8
  std::string name;
};

enum class PairKind { homography, tps, sprites };
const char* pair_kind_name(PairKind k);

// A gray float image on the host.
struct GrayImage {
  int64_t h = 0, w = 0;
  std::vector<float> v;
  float at(int64_t y, int64_t x) const { return v[static_cast<size_t>(y * w + x)]; }
};

// 3 x 3 projective map, row-major, applied to (x, y, 1).
struct Homography {
  double m[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  void apply(double x, double y, double& ox, double& oy) const;
  Homography inverse() const;
  Homography then(const Homography& next) const;  // next o this
};

struct SyntheticOptions {
  int64_t width = 128, height = 96;
  double max_shift = 8;      // background translation, pixels
  double max_rotation = 5;   // background, degrees
  double max_scale = 0.05;   // background, relative
  double sprite_shift = 8, sprite_rotation = 10, sprite_scale = 0.1;
  // Photometric differences, so that matching is not a copy search: frame 1 is a gain * I + bias
  // with gain in 1 +- max_gain and bias in +- max_bias, and both frames get Gaussian noise.
  double max_gain = 0.2, max_bias = 0.1, noise = 0.02;
};

class PairSource {
 public:
  // Photos from data_dir/skimage and data_dir/opencv and Fashion-MNIST items; `held_out` picks
  // the evaluation photos and t10k items. Missing data is an Error naming scripts/fetch-data.
  static PairSource open(const std::string& data_dir, bool held_out, SyntheticOptions options = {});
  // From given images (tests): photos and 28 x 28 sprites in [0, 1].
  PairSource(std::vector<GrayImage> photos, std::vector<GrayImage> sprites, SyntheticOptions options);

  // Pair `index` of the stream `seed`; the kind cycles homography, tps, sprites, sprites (half
  // of the pairs are sprite pairs, as in the notes).
  Pair pair(uint64_t seed, int64_t index) const;
  Pair make(PairKind kind, uint64_t seed) const;
  const SyntheticOptions& options() const { return opt_; }
  size_t photo_count() const { return photos_.size(); }
  std::string description() const;

 private:
  std::vector<GrayImage> photos_, sprites_;
  std::vector<std::string> names_;
  SyntheticOptions opt_;
};

// N pairs stacked into a batch: img N x 1 x H x W, flow N x 2 x H x W, valid N x H x W.
struct PairBatch {
  Tensor img0, img1, flow, valid;
};
PairBatch stack_pairs(const std::vector<Pair>& pairs);

// The real pairs at 1 / `factor` resolution; an Error naming the missing file when absent.
Pair motorcycle_pair(const std::string& data_dir, int64_t factor);
Pair aloe_pair(const std::string& data_dir, int64_t factor);

// Reading and resampling helpers shared with the app.
GrayImage read_gray(const std::string& path);
GrayImage downscale(const GrayImage& im, int64_t factor);  // box filter; keeps whole blocks
Tensor to_tensor(const GrayImage& im);                      // 1 x H x W float32

}  // namespace cvg::deepmatch
