// Gradient reversal: an aliasing forward and a scaled, negated backward (see grad_reverse.h).
#include "kernels/grad_reverse.h"

#include <cmath>

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/unary.h"

namespace cvg {

Tensor grad_reverse(const Tensor& x, double lambda) {
  TraceOp trace("grad_reverse", {x});
  CVG_CHECK(x.defined(), "grad_reverse: undefined input");
  CVG_CHECK(std::isfinite(lambda), "grad_reverse: lambda must be finite, got ", lambda);
  // A new handle on the same elements: the identity costs nothing, and the output gets its own
  // autograd node (x's node stays untouched).
  Tensor out = make_view(x, x.shape(), x.strides(), x.offset());
  return trace.result(record("grad_reverse", out, {x}, [lambda](const Tensor& g, const Node&) {
    return TensorList{mul(g, -lambda)};
  }));
}

}  // namespace cvg
