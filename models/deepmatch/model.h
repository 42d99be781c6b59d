#pragma once
// Fully-trainable Deep Matching (Thewlis et al., BMVC 2016; ../shared/papers/
// thewlis-objects-from-motion.md, "Ch.3") as a model: a descriptor network, the 4-D U-network of
// kernels/deepmatch.h and the learnable exponents nu_l.
//
//   image pair (N x 1 x H x W gray, [0, 1])
//     -> dense descriptors phi(I) (N x d x H x W, >= 0, L2-normalised per pixel)
//     -> S_0 = dm_correlation(phi_0 sampled at the reference grid, phi_1 dense)
//     -> Q_0 = deep_matching(S_0, nu_0..nu_{L-1})        N x H0 x W0 x K x K
//
// Geometry (DmGeometry). Reference (i, j) sits at pixel (offset + stride j, offset + stride i)
// (x, y; pixel centres at integer coordinates), H0 = ceil((H - offset) / stride) rows; offset k
// of Q_0 is the target displacement (kx - R, ky - R) pixels.
//
// Descriptors (DescriptorKind).
//   hog  fixed, the HOG-like descriptor of DeepMatching: the image gradient projected on 8
//        directions and rectified (max(0, <grad, u_b>), a soft orientation histogram), summed
//        over 4 x 4 cells, and the 2 x 2 cells around a pixel concatenated: d = 32. All of it is
//        convolutions, so it runs on any device and is differentiable (unused: it has no weights).
//   cnn  three 3 x 3 / 5 x 5 convolutions with ReLUs (1 -> 16 -> 32 -> 32, the last two dilated
//        by 2: a 13 x 13 receptive field), trained from scratch; the last ReLU keeps it >= 0.
// Both end in normalise_descriptors: x / sqrt(|x|^2 + eps^2), so S_0 lies in [0, 1] as the
// power layer needs; eps damps textureless pixels (a HOG of a flat patch is noise).
//
// Chunking (match_volume). Reference rows only interact through the aggregation, whose cone
// reaches 2^L - 1 rows up and down (docs/deepmatch.md), so Q_0 is computed for blocks of rows,
// each with that halo of extra rows whose results are dropped: the same numbers as one pass,
// in a bounded memory.
#include <cstdint>
#include <memory>
#include <string>

#include "nn/module.h"

namespace cvg::deepmatch {

struct DmGeometry {
  int64_t radius = 16;  // R_0: Q_0 covers displacements in [-R_0, R_0]^2
  int64_t levels = 3;   // L
  int64_t stride = 8;   // alpha_0 = delta_0
  int64_t offset = 4;   // beta_0
  int64_t grid_rows(int64_t height) const { return (height - offset + stride - 1) / stride; }
  int64_t grid_cols(int64_t width) const { return (width - offset + stride - 1) / stride; }
  int64_t k0() const { return 2 * radius + 1; }
  // Throws, naming `what` (e.g. "image 2 (12 x 4)"), unless an image of height x width gives a
  // grid on which Q_0 can hold a match: at least one reference point per side and, for L >= 2,
  // more than 2^(L-2) (the top level's parents sit 2^(L-2) points away on either side, so on a
  // smaller grid every point of Q_0 is -inf: no match, and no term of the training loss).
  void check_image(int64_t height, int64_t width, const std::string& what) const;
  // Bytes of the 4-D tensors one reference point costs in a no-grad forward pass: every S_l,
  // the pooled scores, their uint8 switches and the Q_l being built (float32), summed over levels.
  int64_t bytes_per_point() const;
};

enum class DescriptorKind { hog, cnn };
DescriptorKind parse_descriptor(const std::string& name);
const char* descriptor_name(DescriptorKind kind);

// x / sqrt(sum_c x_c^2 + eps^2) over the channels of N x C x H x W.
Tensor normalise_descriptors(const Tensor& x, double eps);
// The fixed HOG-like descriptor (before normalisation): N x 1 x H x W -> N x 32 x H x W.
Tensor hog_features(const Tensor& gray);

class CnnDescriptor : public nn::Module {
 public:
  CnnDescriptor();
  Tensor forward(const Tensor& gray) override;  // N x 32 x H x W, >= 0, not normalised
  std::string describe() const override { return "CnnDescriptor (5x5 16, 3x3d2 32, 3x3d2 32, ReLU)"; }

 private:
  std::shared_ptr<nn::Module> c1_, c2_, c3_;
};

class DeepMatchNet : public nn::Module {
 public:
  DeepMatchNet(DescriptorKind kind, DmGeometry geometry, double nu_init = 1.4);
  std::string describe() const override;

  // Dense normalised descriptors of N x 1 x H x W images.
  Tensor descriptors(const Tensor& gray);
  // Q_0 of the pair (N x H0 x W0 x K x K), differentiable in the descriptor weights and nu.
  Tensor forward_pair(const Tensor& gray0, const Tensor& gray1);
  // Q_0 from descriptors, reference rows in blocks that fit max_bytes (see the header);
  // rows_per_block > 0 forces the block size (tests). No autograd.
  Tensor match_volume(const Tensor& desc0, const Tensor& desc1, int64_t max_bytes,
                      int64_t rows_per_block = 0) const;
  // Q_0 in one pass from descriptors (what match_volume must equal).
  Tensor q0_from_descriptors(const Tensor& desc0, const Tensor& desc1) const;

  DescriptorKind kind() const { return kind_; }
  const DmGeometry& geometry() const { return geo_; }
  // The exponents nu_l as one tensor of L elements (a parameter).
  Tensor nu;
  // The CNN's parameters (empty for hog) and nu, for optimisers that train one group.
  std::vector<Tensor> feature_parameters() const;
  // Keeps every nu_l in [lo, hi] after an optimiser step (the power layer needs nu > 0).
  void clamp_nu(double lo = 0.05, double hi = 20.0);

 private:
  // Q_0 from descriptors at the reference grid (ref) and a dense target map whose reference
  // offset is `offset` pixels.
  Tensor q0_from_grid(const Tensor& ref, const Tensor& target, int64_t offset) const;
  DescriptorKind kind_;
  DmGeometry geo_;
  std::shared_ptr<CnnDescriptor> cnn_;
};

// Ground-truth offset indices for dm_hinge_loss: flow (N x 2 x H x W, (dx, dy) pixels) and
// valid (N x H x W, nonzero = has ground truth) sampled at the reference grid and rounded to
// the nearest offset; N x H0 x W0 x 2 int64 (gy, gx), -1 where invalid (the loss skips it).
Tensor gt_offsets(const Tensor& flow, const Tensor& valid, const DmGeometry& geo);

}  // namespace cvg::deepmatch
