// Reductions: dim handling, device dispatch and autograd.
#include "kernels/reduce.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/unary.h"
#include "kernels/view.h"

namespace cvg {

std::vector<int> reduction_dims(const Dims& dims, int64_t ndim, const char* op) {
  std::vector<int> out;
  if (dims.empty()) {
    for (int d = 0; d < ndim; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(normalize_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  CVG_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, ": dim repeats in ",
            Shape(dims));
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int>& rdims, bool keepdim) {
  Shape out;
  for (int d = 0; d < static_cast<int>(shape.size()); ++d) {
    const bool reduced = std::binary_search(rdims.begin(), rdims.end(), d);
    if (!reduced) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Tensor reduce_forward(ReduceKind kind, const Tensor& x, const Dims& dims, bool keepdim,
                      const char* name) {
  CVG_CHECK(x.defined(), name, ": undefined input");
  CVG_CHECK(is_floating(x.dtype()), name, ": expected a floating-point tensor, got ",
            dtype_name(x.dtype()), "; convert with to(DType::float32)");
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), name);
  const Shape out_shape = reduced_shape(x.shape(), rdims, keepdim);
  // Move reduced dims to the end, then reduce rows of the contiguous [outer, inner] layout.
  std::vector<int64_t> perm;
  int64_t inner = 1;
  for (int d = 0; d < x.dim(); ++d)
    if (!std::binary_search(rdims.begin(), rdims.end(), d)) perm.push_back(d);
  for (int d : rdims) {
    perm.push_back(d);
    inner *= x.shape()[d];
  }
  CVG_CHECK(inner > 0 || kind == ReduceKind::sum, name,
            ": cannot reduce over an empty dim (shape ", x.shape(), ")");
  Tensor rows;
  {
    NoGradGuard no_grad;
    rows = permute(x, perm).contiguous();
  }
  const int64_t outer = numel_of(out_shape);
  Tensor out = Tensor::empty(out_shape, x.options());
  if (x.device().is_cpu()) {
    reduce_rows_cpu(kind, rows, outer, inner, out);
  } else {
#ifdef CVG_WITH_CUDA
    reduce_rows_cuda(kind, rows, outer, inner, out);
#else
    fail(name, ": no kernel for device ", x.device().str());
#endif
  }
  return out;
}

namespace {
// Gradient of a keepdim=false reduction, reshaped so that it broadcasts against the input.
Tensor unsqueeze_reduced(const Tensor& g, const Shape& in_shape, const std::vector<int>& rdims) {
  return reshape(g, reduced_shape(in_shape, rdims, /*keepdim=*/true));
}
}  // namespace

Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) {
  TraceOp trace("sum", {x});
  Tensor out = reduce_forward(ReduceKind::sum, x, dims, keepdim, "sum");
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), "sum");
  const Shape in_shape = x.shape();
  return trace.result(record("sum", out, {x}, [rdims, in_shape](const Tensor& g, const Node&) {
    return TensorList{expand(unsqueeze_reduced(g, in_shape, rdims), in_shape)};
  }));
}

Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) {
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), "mean");
  int64_t count = 1;
  for (int d : rdims) count *= x.shape()[d];
  CVG_CHECK(count > 0, "mean: cannot average over an empty dim (shape ", x.shape(), ")");
  return sum(x, dims, keepdim) * (1.0 / static_cast<double>(count));
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  CVG_CHECK(shape.size() <= static_cast<size_t>(x.dim()), "sum_to: cannot reduce shape ",
            x.shape(), " to ", shape);
  const size_t lead = x.dim() - shape.size();
  Dims dims;
  for (size_t d = 0; d < static_cast<size_t>(x.dim()); ++d) {
    if (d < lead) {
      dims.push_back(static_cast<int64_t>(d));
    } else if (shape[d - lead] == 1 && x.shape()[d] != 1) {
      dims.push_back(static_cast<int64_t>(d));
    } else {
      CVG_CHECK(shape[d - lead] == x.shape()[d], "sum_to: cannot reduce shape ", x.shape(),
                " to ", shape);
    }
  }
  if (dims.empty()) return reshape(x, shape);
  return reshape(sum(x, dims, /*keepdim=*/true), shape);
}

}  // namespace cvg
