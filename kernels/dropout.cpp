// dropout: checks, the random stream, device dispatch and autograd (see kernels/dropout.h).
#include "kernels/dropout.h"

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/dispatch.h"

namespace cvg {

namespace {

// x masked and scaled with the mask of stream (seed, offset); differentiable, and its own
// backward (the map is linear and diagonal).
Tensor dropout_apply(const Tensor& x, uint64_t seed, uint64_t offset, double p) {
  const double scale = 1.0 / (1.0 - p);
  Tensor xc;
  {
    NoGradGuard no_grad;
    xc = x.contiguous();
  }
  Tensor out = Tensor::empty(x.shape(), x.options());
  if (out.numel() > 0) {
    on_device("dropout", x.device(), [&] { dropout_cpu(xc, out, seed, offset, p, scale); }, [&] {
#ifdef CVG_WITH_CUDA
      dropout_cuda(xc, out, seed, offset, p, scale);
#endif
    });
  }
  return record("dropout", out, {x}, [seed, offset, p](const Tensor& g, const Node&) {
    return TensorList{dropout_apply(g, seed, offset, p)};
  });
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training) {
  TraceOp trace("dropout", {x});
  CVG_CHECK(x.defined(), "dropout: undefined input");
  CVG_CHECK(is_floating(x.dtype()), "dropout: expected a floating-point input (float32 or float64), got ",
            dtype_name(x.dtype()));
  CVG_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return trace.result(x);
  Generator& gen = global_generator();
  const uint64_t seed = gen.seed;
  const uint64_t offset = gen.take(static_cast<uint64_t>(x.numel()));
  return trace.result(dropout_apply(x, seed, offset, p));
}

}  // namespace cvg
