#include "models/landmarks/objective.h"

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/landmark_loss.h"
#include "kernels/shape.h"
#include "kernels/spatial.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "models/landmarks/losses.h"

namespace cvg::landmarks {

ObjectiveParts training_objective(Detector& detector, const Tensor& images,
                                  const ObjectiveOptions& o) {
  ObjectiveParts r;
  r.triplet = make_triplets(images, o.crop, o.warps);
  const int64_t n = images.size(0);
  const Tensor logits = detector.forward(cat({r.triplet.x, r.triplet.x2}, 0));
  Tensor eq, div;
  if (o.fused && !o.align) {
    // Straight from the logits: no probability maps in the graph (they are kept for callers).
    const Tensor x = narrow(logits, 0, 0, n), x2 = narrow(logits, 0, n, n);
    eq = landmark_equivariance_loss(x, x2, r.triplet.grid);
    div = landmark_diversity_loss(x, o.cell) + landmark_diversity_loss(x2, o.cell);
    NoGradGuard no_grad;
    const Tensor p = spatial_softmax(logits);
    r.p = narrow(p, 0, 0, n);
    r.p2 = narrow(p, 0, n, n);
  } else {
    const Tensor p = spatial_softmax(logits);
    r.p = narrow(p, 0, 0, n);
    r.p2 = narrow(p, 0, n, n);
    eq = o.align ? alignment_loss(r.p, r.p2, r.triplet.grid)
                 : equivariance_loss(r.p, r.p2, r.triplet.grid);
    div = diversity_loss(r.p, o.cell) + diversity_loss(r.p2, o.cell);
  }
  r.total = eq + div * o.gamma;
  r.equivariance = eq.detach();
  r.diversity = div.detach();
  return r;
}

}  // namespace cvg::landmarks
