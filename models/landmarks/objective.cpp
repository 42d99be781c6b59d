#include "models/landmarks/objective.h"

#include "kernels/binary.h"
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
  const Tensor p = spatial_softmax(detector.forward(cat({r.triplet.x, r.triplet.x2}, 0)));
  r.p = narrow(p, 0, 0, n);
  r.p2 = narrow(p, 0, n, n);
  const Tensor eq = o.align ? alignment_loss(r.p, r.p2, r.triplet.grid)
                            : equivariance_loss(r.p, r.p2, r.triplet.grid);
  const Tensor div = diversity_loss(r.p, o.cell) + diversity_loss(r.p2, o.cell);
  r.total = eq + div * o.gamma;
  r.equivariance = eq.item();
  r.diversity = div.item();
  return r;
}

}  // namespace cvg::landmarks
