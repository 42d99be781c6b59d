// softmax / log_softmax: dim handling, device dispatch and autograd (see kernels/softmax.h).
#include "kernels/softmax.h"

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/dispatch.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"

namespace cvg {

namespace {

Tensor softmax_forward(const Tensor& x, int d, bool log, const char* name) {
  CVG_CHECK(is_floating(x.dtype()), name, ": expected a floating-point tensor, got ",
            dtype_name(x.dtype()));
  Tensor xc;
  {
    NoGradGuard no_grad;
    xc = x.contiguous();
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= x.shape()[i];
  for (int i = d + 1; i < x.dim(); ++i) inner *= x.shape()[i];
  const int64_t D = x.shape()[d];
  Tensor out = Tensor::empty(x.shape(), x.options());
  if (out.numel() == 0) return out;
  on_device(name, x.device(), [&] { softmax_cpu(xc, out, outer, D, inner, log); }, [&] {
#ifdef CVG_WITH_CUDA
    softmax_cuda(xc, out, outer, D, inner, log);
#endif
  });
  return out;
}

template <typename Backward>
Tensor softmax_op(const char* name, const Tensor& x, int64_t dim, bool log, Backward bwd) {
  TraceOp trace(name, {x});
  CVG_CHECK(x.defined(), name, ": undefined input");
  if (x.dim() == 0) {
    // A scalar is a row of one element (PyTorch accepts dim 0 or -1 here).
    normalize_dim(dim, 1, name);
    Tensor row = reshape(x, {1});
    return trace.result(reshape(log ? log_softmax(row, 0) : softmax(row, 0), {}));
  }
  const int d = normalize_dim(dim, x.dim(), name);
  Tensor y = softmax_forward(x, d, log, name);
  if (!any_requires_grad({x})) return trace.result(y);
  SavedTensor sy(y, /*is_output=*/true);
  return trace.result(record(name, y, {x}, [sy, d, bwd](const Tensor& g, const Node& n) {
    return TensorList{bwd(g, sy.unpack(n), d)};
  }));
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_op("softmax", x, dim, false, [](const Tensor& g, const Tensor& y, int d) {
    return y * (g - sum(g * y, {d}, /*keepdim=*/true));
  });
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  // Softmax's probabilities are exp(y); the sum of g is taken once per row.
  return softmax_op("log_softmax", x, dim, true, [](const Tensor& g, const Tensor& y, int d) {
    return g - exp(y) * sum(g, {d}, /*keepdim=*/true);
  });
}

}  // namespace cvg
