#pragma once
// One training step's objective (thesis eq. 9, minus the weight decay, which the optimizer
// applies): for a batch of S x S images,
//     (x, x2, G) = make_triplets(images)                       (warps.h)
//     p, p2      = spatial_softmax(detector([x; x2]))          (one forward for both halves)
//     loss       = L_equivariance(p, p2, G)  [or L_align]      (losses.h)
//                  + gamma * (L_div(p) + L_div(p2))
// Shared by the app, its tests and the train-step benchmark, so that all three time and test
// the same computation.
#include "core/tensor.h"
#include "models/landmarks/detector.h"
#include "models/landmarks/warps.h"

namespace cvg::landmarks {

struct ObjectiveOptions {
  int64_t crop = 8;        // pixels cut from every side after warping
  double gamma = 1.0;      // diversity weight (output-pixel units: see README of the app)
  int64_t cell = 2;        // m, the diversity loss's sum-pooling cell
  bool align = false;      // the soft-argmax alignment loss (eq. 5) instead of eq. 6
  bool fused = true;       // eq. 6 and L_div by the fused kernels of kernels/landmark_loss.h
                           // (same values and gradients, differentiable once); false: losses.h
  WarpOptions warps;
};

// The terms stay on the model's device (0-d, detached): reading one waits for the GPU, so a
// training loop reads them after backward and the optimizer step are queued.
struct ObjectiveParts {
  Tensor total;            // differentiable scalar
  Tensor equivariance;     // the eq. 6 (or eq. 5) term
  Tensor diversity;        // L_div(p) + L_div(p2), before gamma
  Triplet triplet;         // the images and grid the step used
  Tensor p, p2;            // probability maps (detached when the fused losses ran)
};

ObjectiveParts training_objective(Detector& detector, const Tensor& images,
                                  const ObjectiveOptions& options);

}  // namespace cvg::landmarks
