#pragma once
// SynthFaces: procedurally rendered cartoon faces with 5 exact landmarks, the CPU stand-in for
// CelebA/MAFL in the `landmarks` app (Thewlis ch.4, "CPU substitute"). Example i is a pure
// function of (seed, i): every random number comes from one Philox stream keyed by
// derive_key(seed, i) (nn/data/transforms.h), so get() keeps no state, runs on any thread, and
// images are generated on demand.
//
// The face model. A head is an ellipsoid in a head frame with x to image right, y down (as in
// images) and z towards the viewer; its half-height is 1, its half-width a in [0.66, 0.80] and
// its half-depth c in [0.78, 0.92]. The features are painted on the front of the ellipsoid as
// decals defined in the head's (x, y), i.e. projected onto the surface along z:
//   eyes   white ellipses centred at (-/+ xe, ye) with an iris and pupil centred on the eye
//          centre (no gaze shift, so the eye-centre landmark is the pupil), a dark lid outline
//          and a brow arc above each
//   mouth  lips between two arcs that meet at the corners (-/+ mw, ym - lift): an
//          expression parameter widens the mouth, raises the corners (smile) and opens it (dark
//          interior, sometimes teeth)
//   hair   (optional) a cap over the top of the head plus a larger ellipsoid behind it that
//          shows around the crown and the sides
//   nose   a separate small ellipsoid, longer than wide, tilted so its lower end sticks out;
//          the tip landmark is its most protruding point along the head's z
//   neck   an ellipsoid below and behind the head; ears: two small ellipsoids at the sides
// Per-identity jitter draws the head axes, eye spacing and size, nose length and size, mouth
// width and height, skin tone (a palette from light to dark plus jitter), hair and iris colours.
//
// Pose and projection. A head-frame point p is rotated as Rz(roll) Ry(yaw) Rx(pitch) p and then
// projected orthographically: image (x, y) = centre + s (p'_x, p'_y), with s = face scale *
// size / 2 (so the head is face-scale x size pixels tall when frontal) and centre = the image
// centre plus a shift of up to max_shift * size in each axis, raised by 0.15 s so that the
// eyes-to-mouth region rather than the whole head is centred. Signs: positive yaw turns the face
// towards image right (the nose tip moves right of the eye midpoint), positive pitch tilts it up
// (the nose tip moves up), positive roll turns it clockwise on screen. The landmarks are the
// same 3-D points sent through the same projection, so they are exact (to float rounding), not
// annotated afterwards. Every feature of the model faces forwards enough that none of the five
// points is occluded within |yaw| <= 30 degrees.
//
// Rendering. Each pixel of a (supersample * size)^2 grid casts an orthographic ray and takes the
// nearest hit among the head, nose, hair, neck and ear ellipsoids (exact ray-ellipsoid
// intersection). Surfaces are Lambert-shaded with an ambient term under a random light
// direction; the skin is modulated by low-frequency blotches (random smooth bumps in head
// coordinates, plus cheek blush) so the texture moves with the face, and the nose gets a darker
// rim and underside.
// Pixels that hit nothing show the background: a random crop (side between a quarter of and the
// whole shorter side, random position, random horizontal flip) of a random image from
// `backgrounds`, bilinearly resampled, or, without backgrounds, two octaves of smooth random
// colour noise. The grid is box-averaged down to size x size (anti-aliasing), then pixel noise
// with a per-image sigma in [0, max_pixel_noise] is added (approximately Gaussian: a centred sum
// of four uniform bytes, independent per pixel and channel) and values are clamped to [0, 1].
// Grey images are the luma 0.299 R + 0.587 G + 0.114 B of the same rendering (then the noise).
// Cost: about half a millisecond per 48-pixel image at supersample 2 on one core.
//
// Coordinates: pixel (i, j) (row i, column j) has its centre at (x, y) = (j, i); the image
// covers [-0.5, size - 0.5] in both axes.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/data/dataset.h"

namespace cvg::data {

struct SynthFaceOptions {
  int64_t size = 48;        // output is size x size (rendered at supersample x size, then box-downsampled)
  int64_t supersample = 2;  // 1 = no anti-aliasing
  bool rgb = true;          // 3 channels, else 1 (luma)
  // 3 x H x W float images in [0, 1] to crop backgrounds from (see load_backgrounds); empty ->
  // procedural noise backgrounds. Shared, read-only: the tensors must not be modified while
  // the dataset is in use.
  std::vector<Tensor> backgrounds;
  double max_yaw_deg = 30, max_pitch_deg = 15, max_roll_deg = 15;  // uniform in [-max, max]
  double scale_min = 0.75, scale_max = 1.0;  // head height relative to the image size
  double max_shift = 0.08;                   // face centre offset, fraction of the image size
  double max_pixel_noise = 0.03;             // std-dev of the additive pixel noise, at most
};

// Loads every image under dir (recursively, in sorted path order, through nn/io/image.h: png,
// jpg, bmp, pgm/ppm, tga) as RGB float [0, 1] 3 x H x W, skipping those whose shorter side is
// below min_side and those stb cannot decode. Images whose longer side exceeds max_side are
// box-downsampled by the smallest integer factor that brings them within it: a 48-pixel face
// never needs more, and it keeps a folder of photographs at a few MB. For the real-photo
// backgrounds in data/opencv and data/skimage (scripts/fetch-data). Throws naming the dir when
// it is not a folder or none of its images is usable.
std::vector<Tensor> load_backgrounds(const std::string& dir, int64_t min_side = 64,
                                     int64_t max_side = 384);

// The head pose of one example, in degrees (signs as in the header comment).
struct SynthFacePose {
  double yaw_deg = 0, pitch_deg = 0, roll_deg = 0;
};

class SynthFaces : public Dataset {
 public:
  // Throws on invalid options (non-positive sizes, scale_min > scale_max, negative angles,
  // backgrounds that are not 3 x H x W float CPU images, ...), naming the option.
  SynthFaces(int64_t count, uint64_t seed, SynthFaceOptions options = {});
  int64_t size() const override { return count_; }
  // input: C x size x size float32 in [0, 1]; target: 5 x 2 float32 (x, y) in output pixels,
  // pixel (i, j)'s centre at (x, y) = (j, i), in MAFL order: left eye centre, right eye centre,
  // nose tip, left mouth corner, right mouth corner ("left" = image left when frontal).
  Example get(int64_t index) const override;
  // The pose example `index` is rendered with: the same draws as get(), without the rendering
  // (for analysing errors by pose).
  SynthFacePose pose(int64_t index) const;
  const SynthFaceOptions& options() const { return options_; }

 private:
  int64_t count_;
  uint64_t seed_;
  SynthFaceOptions options_;
};

// The 5 landmark names in order, and the indices of the two eye centres (for the inter-ocular
// distance).
const std::array<const char*, 5>& synth_face_landmark_names();
constexpr int kSynthFaceLeftEye = 0, kSynthFaceRightEye = 1;

// A PNG of faces 0 .. count-1 of SynthFaces(count, seed, options) in a grid (ceil(sqrt(count))
// columns, 2 px white padding), each face enlarged by an integer zoom (nearest neighbour, the
// smallest zoom that makes it at least 128 px wide) with its 5 landmarks drawn as crosses in
// viz::palette(0..4) order. Grey datasets are shown as grey RGB.
void write_synth_face_preview(const std::string& png_path, uint64_t seed, int64_t count,
                              SynthFaceOptions options = {});

}  // namespace cvg::data
