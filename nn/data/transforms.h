#pragma once
// Per-example image transforms for the DataLoader, on float images [C, H, W] (values in [0, 1]
// before normalise). A transform is a function (image, rng) -> image; random ones draw from the
// SampleRng the loader hands them, a Philox stream keyed by (seed, epoch, example index), so the
// result depends only on those three numbers, never on thread timing or on the other examples.
//
//   random_crop(h, w, pad)   pads every side by `pad` with `fill`, then cuts an h x w window
//                            whose top-left corner is uniform over all valid positions
//   center_crop(h, w)        the middle h x w window (odd remainders favour the top/left)
//   resize(h, w)             bilinear, pixel centres at (i + 0.5) as in PyTorch's
//                            align_corners=False and OpenCV, no antialiasing; edges clamp
//   random_horizontal_flip   mirrors x with probability p
//   color_jitter(b, c, s)    brightness, then contrast, then saturation, each by a factor drawn
//                            uniformly from [max(0, 1 - v), 1 + v]; results clamped to [0, 1]:
//                              brightness  x * f
//                              contrast    m + f (x - m), m = mean luma of the whole image
//                              saturation  g + f (x - g), g = luma of that pixel
//                            luma = 0.299 R + 0.587 G + 0.114 B (for one channel, the value)
//   normalize(mean, std)     (x - mean[c]) / std[c] per channel
// Every random transform draws the same number of values whatever their outcome, so adding or
// changing one transform never shifts the draws of another example.
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "nn/data/dataset.h"

namespace cvg::data {

// A Philox stream for one (seed, epoch, index). Draws are numbered; each call takes the next.
class SampleRng {
 public:
  SampleRng(uint64_t seed, uint64_t epoch, uint64_t index);
  explicit SampleRng(uint64_t key) : key_(key) {}
  double uniform();                           // [0, 1)
  double uniform(double lo, double hi);       // [lo, hi)
  int64_t randint(int64_t lo, int64_t hi);    // [lo, hi), hi > lo
  bool bernoulli(double p);                   // true with probability p
  uint64_t key() const { return key_; }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// A 64-bit key derived from two numbers through Philox: the loader keys epochs by
// derive_key(seed, epoch) and examples by derive_key(epoch_key, index).
uint64_t derive_key(uint64_t a, uint64_t b);

using Transform = std::function<Tensor(const Tensor& image, SampleRng& rng)>;
// Transforms of whole examples (for instance a crop applied identically to an image and its
// label map). on_input lifts an image transform to one that changes only example.input.
using ExampleTransform = std::function<Example(Example example, SampleRng& rng)>;
ExampleTransform on_input(Transform t);

Transform compose(std::vector<Transform> transforms);
Transform random_crop(int64_t height, int64_t width, int64_t padding = 0, double fill = 0.0);
Transform center_crop(int64_t height, int64_t width);
Transform resize(int64_t height, int64_t width);
Transform random_horizontal_flip(double p = 0.5);
Transform color_jitter(double brightness, double contrast = 0.0, double saturation = 0.0);
Transform normalize(std::vector<double> mean, std::vector<double> std);

// The deterministic cores of the transforms above, usable on their own.
// crop: window [top, top + h) x [left, left + w) of the image padded by `padding` (fill value
// outside the image); the result is a new float tensor.
Tensor crop(const Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width,
            int64_t padding = 0, double fill = 0.0);
Tensor resize_bilinear(const Tensor& image, int64_t height, int64_t width);
Tensor hflip(const Tensor& image);
Tensor adjust_brightness(const Tensor& image, double factor);
Tensor adjust_contrast(const Tensor& image, double factor);
Tensor adjust_saturation(const Tensor& image, double factor);

}  // namespace cvg::data
