// Reductions: dim handling, checks, device dispatch and autograd. The kernels see every
// reduction as rows: the reduced dims are permuted to the end and the tensor made contiguous,
// so each output element folds one contiguous row [outer, inner] (reduce_cpu.cpp,
// reduce_cuda.cu, with the combine rules of reduce_math.h).
#include "kernels/reduce.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/dispatch.h"
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
  // A 0-d tensor has no dim to reduce: dim 0 (or -1) is accepted and means "nothing".
  if (ndim == 0) out.clear();
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

namespace {

void check_floating_input(const Tensor& x, const char* name) {
  CVG_CHECK(x.defined(), name, ": undefined input");
  CVG_CHECK(is_floating(x.dtype()), name, ": expected a floating-point tensor, got ",
            dtype_name(x.dtype()), "; convert with to(DType::float32)");
}

// x with the dims in `last` moved to the end (in order), as a contiguous tensor, outside
// autograd (the ops record their own nodes).
Tensor rows_of(const Tensor& x, const std::vector<int>& last) {
  std::vector<int64_t> perm;
  for (int d = 0; d < x.dim(); ++d)
    if (std::find(last.begin(), last.end(), d) == last.end()) perm.push_back(d);
  perm.insert(perm.end(), last.begin(), last.end());
  NoGradGuard no_grad;
  return permute(x, perm).contiguous();
}

Dims as_dims(const std::vector<int>& rdims) { return Dims(rdims.begin(), rdims.end()); }

int64_t count_of(const Shape& shape, const std::vector<int>& rdims) {
  int64_t n = 1;
  for (int d : rdims) n *= shape[d];
  return n;
}

// Reshapes a reduction's result (or its gradient) to the keepdim shape, so that it
// broadcasts against the input.
Tensor unsqueeze_reduced(const Tensor& g, const Shape& in_shape, const std::vector<int>& rdims) {
  return reshape(g, reduced_shape(in_shape, rdims, /*keepdim=*/true));
}

}  // namespace

Tensor reduce_forward(ReduceKind kind, const Tensor& x, const Dims& dims, bool keepdim,
                      const char* name, const ReduceParams& params) {
  check_floating_input(x, name);
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), name);
  const Shape out_shape = reduced_shape(x.shape(), rdims, keepdim);
  const int64_t inner = count_of(x.shape(), rdims);
  // Empty rows have a natural value for sums (0), var (NaN), logsumexp (-inf) and norms (0);
  // max and min have none.
  CVG_CHECK(inner > 0 || (kind != ReduceKind::max && kind != ReduceKind::min), name,
            ": cannot reduce over an empty dim (shape ", x.shape(), ")");
  const Tensor rows = rows_of(x, rdims);
  const int64_t outer = numel_of(out_shape);
  Tensor out = Tensor::empty(out_shape, x.options());
  on_device(name, x.device(), [&] { reduce_rows_cpu(kind, rows, outer, inner, out, params); }, [&] {
#ifdef CVG_WITH_CUDA
    reduce_rows_cuda(kind, rows, outer, inner, out, params);
#endif
  });
  return out;
}

ValuesIndices argreduce_forward(bool is_max, const Tensor& x, int64_t dim, bool keepdim,
                                bool want_values, const char* name) {
  check_floating_input(x, name);
  int d = normalize_dim(dim, x.dim(), name);
  Tensor src = x;
  if (x.dim() == 0) {  // a scalar is its own maximum, at index 0
    NoGradGuard no_grad;
    src = reshape(x, {1});
    keepdim = false;
  }
  const int64_t inner = src.shape()[d];
  CVG_CHECK(inner > 0, name, ": cannot reduce over dim ", dim, " of size 0 (shape ",
            x.shape(), ")");
  Shape out_shape = reduced_shape(src.shape(), {d}, keepdim);
  const Tensor rows = rows_of(src, {d});
  const int64_t outer = numel_of(out_shape);
  ValuesIndices r;
  if (want_values) r.values = Tensor::empty(out_shape, x.options());
  r.indices = Tensor::empty(out_shape, x.options().with_dtype(DType::int64));
  on_device(name, x.device(), [&] { argreduce_rows_cpu(is_max, rows, outer, inner, r.values, r.indices); }, [&] {
#ifdef CVG_WITH_CUDA
    argreduce_rows_cuda(is_max, rows, outer, inner, r.values, r.indices);
#endif
  });
  return r;
}

// ---------------------------------------------------------------------------------------------
// Differentiable ops.

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
  check_floating_input(x, "mean");
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), "mean");
  const int64_t count = count_of(x.shape(), rdims);
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

Tensor var(const Tensor& x, const Dims& dims, bool unbiased, bool keepdim) {
  TraceOp trace("var", {x});
  const double ddof = unbiased ? 1.0 : 0.0;
  Tensor out = reduce_forward(ReduceKind::var, x, dims, keepdim, "var", {ddof, 2.0});
  if (!any_requires_grad({x})) return trace.result(out);
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), "var");
  const Shape in_shape = x.shape();
  const int64_t count = count_of(in_shape, rdims);
  SavedTensor sx(x);
  return trace.result(record("var", out, {x},
      [sx, rdims, in_shape, count, ddof](const Tensor& g, const Node& n) {
        // d/dx_i sum_j (x_j - m)^2 / (N - ddof) = 2 (x_i - m) / (N - ddof): the terms through
        // the mean cancel because sum_j (x_j - m) = 0.
        if (count == 0) return TensorList{zeros(in_shape, g.options())};
        const Tensor xs = sx.unpack(n);
        const Tensor centered = xs - mean(xs, as_dims(rdims), /*keepdim=*/true);
        const double scale = 2.0 / (static_cast<double>(count) - ddof);
        return TensorList{unsqueeze_reduced(g, in_shape, rdims) * centered * scale};
      }));
}

Tensor std_dev(const Tensor& x, const Dims& dims, bool unbiased, bool keepdim) {
  TraceOp trace("std_dev", {x});
  check_floating_input(x, "std_dev");
  reduction_dims(dims, x.dim(), "std_dev");  // so that a bad dim is reported as std_dev's
  return trace.result(sqrt(var(x, dims, unbiased, keepdim)));
}

namespace {

// amax / amin: the gradient is shared evenly by the elements equal to the result.
Tensor extremum(const char* name, ReduceKind kind, const Tensor& x, const Dims& dims,
                bool keepdim) {
  TraceOp trace(name, {x});
  Tensor out = reduce_forward(kind, x, dims, keepdim, name);
  if (!any_requires_grad({x})) return trace.result(out);
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), name);
  const Shape in_shape = x.shape();
  SavedTensor sx(x), sy(out, /*is_output=*/true);
  return trace.result(record(name, out, {x}, [sx, sy, rdims, in_shape](const Tensor& g, const Node& n) {
    // The mask is piecewise constant in x, so it is built outside the graph.
    const Tensor y = unsqueeze_reduced(sy.unpack(n).detach(), in_shape, rdims);
    const Tensor mask = eq(sx.unpack(n).detach(), y).to(g.dtype());
    const Tensor count = sum(mask, as_dims(rdims), /*keepdim=*/true);
    return TensorList{(unsqueeze_reduced(g, in_shape, rdims) / count) * mask};
  }));
}

// max / min over one dim: values with a node whose backward puts g at the winning index.
ValuesIndices extremum_along(const char* name, bool is_max, const Tensor& x, int64_t dim,
                             bool keepdim) {
  TraceOp trace(name, {x});
  ValuesIndices r = argreduce_forward(is_max, x, dim, keepdim, /*want_values=*/true, name);
  if (!any_requires_grad({x})) {
    r.values = trace.result(r.values);
    return r;
  }
  // A 0-d input is handled as a [1] tensor reduced over dim 0.
  const Shape in_shape = x.shape();
  const Shape work_shape = x.dim() == 0 ? Shape{1} : in_shape;
  const int d = x.dim() == 0 ? 0 : normalize_dim(dim, x.dim(), name);
  const Shape keep_shape = reduced_shape(work_shape, {d}, /*keepdim=*/true);
  const int64_t size = work_shape[d];
  SavedTensor si(r.indices);
  r.values = trace.result(record(name, r.values, {x},
      [si, in_shape, keep_shape, d, size](const Tensor& g, const Node& n) {
        const Tensor idx = reshape(si.unpack(n), keep_shape);
        return TensorList{
            reshape(index_put_along_dim(reshape(g, keep_shape), idx, d, size), in_shape)};
      }));
  return r;
}

Tensor arg_flat(const char* name, bool is_max, const Tensor& x) {
  TraceOp trace(name, {x});
  check_floating_input(x, name);
  Tensor flat;
  {
    NoGradGuard no_grad;
    flat = reshape(x, {-1});
  }
  return trace.result(argreduce_forward(is_max, flat, 0, false, false, name).indices);
}

}  // namespace

Tensor amax(const Tensor& x, const Dims& dims, bool keepdim) {
  return extremum("amax", ReduceKind::max, x, dims, keepdim);
}
Tensor amin(const Tensor& x, const Dims& dims, bool keepdim) {
  return extremum("amin", ReduceKind::min, x, dims, keepdim);
}
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_along("max", true, x, dim, keepdim);
}
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_along("min", false, x, dim, keepdim);
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  TraceOp trace("argmax", {x});
  return trace.result(argreduce_forward(true, x, dim, keepdim, false, "argmax").indices);
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  TraceOp trace("argmin", {x});
  return trace.result(argreduce_forward(false, x, dim, keepdim, false, "argmin").indices);
}
Tensor argmax(const Tensor& x) { return arg_flat("argmax", true, x); }
Tensor argmin(const Tensor& x) { return arg_flat("argmin", false, x); }

Tensor logsumexp(const Tensor& x, const Dims& dims, bool keepdim) {
  TraceOp trace("logsumexp", {x});
  Tensor out = reduce_forward(ReduceKind::logsumexp, x, dims, keepdim, "logsumexp");
  if (!any_requires_grad({x})) return trace.result(out);
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), "logsumexp");
  const Shape in_shape = x.shape();
  SavedTensor sx(x), sy(out, /*is_output=*/true);
  return trace.result(record("logsumexp", out, {x},
      [sx, sy, rdims, in_shape](const Tensor& g, const Node& n) {
        // d lse / dx = exp(x - lse) = softmax(x); the saved output stays in the graph so the
        // second derivative sees lse's dependence on x.
        const Tensor y = unsqueeze_reduced(sy.unpack(n), in_shape, rdims);
        return TensorList{unsqueeze_reduced(g, in_shape, rdims) * exp(sx.unpack(n) - y)};
      }));
}

Tensor norm(const Tensor& x, double p, const Dims& dims, bool keepdim) {
  TraceOp trace("norm", {x});
  check_floating_input(x, "norm");
  CVG_CHECK(p > 0, "norm: p must be positive (or infinity), got ", p);
  const std::vector<int> rdims = reduction_dims(dims, x.dim(), "norm");
  if (std::isinf(p)) return trace.result(amax(abs(x), dims, keepdim));
  Tensor out = reduce_forward(ReduceKind::norm, x, dims, keepdim, "norm", {0.0, p});
  if (!any_requires_grad({x})) return trace.result(out);
  const Shape in_shape = x.shape();
  SavedTensor sx(x), sy(out, /*is_output=*/true);
  return trace.result(record("norm", out, {x},
      [sx, sy, rdims, in_shape, p](const Tensor& g, const Node& n) {
        const Tensor xs = sx.unpack(n);
        const Tensor gk = unsqueeze_reduced(g, in_shape, rdims);
        if (p == 1.0) return TensorList{gk * sign(xs)};
        const Tensor y = unsqueeze_reduced(sy.unpack(n), in_shape, rdims);
        // A zero norm means every x in the row is 0; dividing by 1 there instead gives the
        // gradient 0 and keeps NaN out of the second derivative (no 0/0 anywhere).
        const Tensor safe = where(eq(y, zeros({}, y.options())), ones({}, y.options()), y);
        if (p == 2.0) return TensorList{gk * xs / safe};
        return TensorList{gk * sign(xs) * pow(abs(xs) / safe, p - 1.0)};
      }));
}

// ---------------------------------------------------------------------------------------------
// index_get_along_dim / index_put_along_dim.

namespace {

struct AlongDim {
  int d;
  int64_t outer, n, inner;
};

// Checks shared by get and put; `full` is the shape with the whole dim, `index` has size 1
// there. Returns the [outer, n, inner] view of `full`.
AlongDim check_along_dim(const char* op, const Tensor& values, const Tensor& index,
                         int64_t dim) {
  CVG_CHECK(values.defined() && index.defined(), op, ": undefined input");
  common_device(op, {values, index});
  CVG_CHECK(is_floating(values.dtype()), op, ": expected a floating-point tensor, got ",
            dtype_name(values.dtype()));
  CVG_CHECK(index.dtype() == DType::int64, op, ": index must be int64, got ",
            dtype_name(index.dtype()));
  CVG_CHECK(index.dim() > 0 && index.dim() == values.dim(), op,
            ": index must have as many dims as the values (at least 1), got index shape ",
            index.shape(), " and values shape ", values.shape());
  const int d = normalize_dim(dim, index.dim(), op);
  CVG_CHECK(index.shape()[d] == 1, op, ": index must have size 1 at dim ", dim, ", got shape ",
            index.shape());
  AlongDim a{d, 1, 0, 1};
  for (int k = 0; k < d; ++k) a.outer *= index.shape()[k];
  for (int k = d + 1; k < index.dim(); ++k) a.inner *= index.shape()[k];
  return a;
}

}  // namespace

Tensor index_get_along_dim(const Tensor& x, const Tensor& index, int64_t dim) {
  const char* op = "index_get_along_dim";
  TraceOp trace(op, {x, index});
  AlongDim a = check_along_dim(op, x, index, dim);
  Shape expected = x.shape();
  expected[a.d] = 1;
  CVG_CHECK(index.shape() == expected, op, ": index shape ", index.shape(), " must equal ",
            expected, " (x's shape ", x.shape(), " with size 1 at dim ", dim, ")");
  a.n = x.shape()[a.d];
  Tensor xc, ic;
  {
    NoGradGuard no_grad;
    xc = x.contiguous();
    ic = index.contiguous();
  }
  Tensor out = Tensor::empty(index.shape(), x.options());
  on_device(op, x.device(), [&] { index_get_cpu(xc, ic, a.outer, a.n, a.inner, out, op); }, [&] {
#ifdef CVG_WITH_CUDA
    index_get_cuda(xc, ic, a.outer, a.n, a.inner, out, op);
#endif
  });
  if (!any_requires_grad({x})) return trace.result(out);
  SavedTensor si(index);
  const int d = a.d;
  const int64_t n = a.n;
  return trace.result(record(op, out, {x}, [si, d, n](const Tensor& g, const Node& node) {
    return TensorList{index_put_along_dim(g, si.unpack(node), d, n)};
  }));
}

Tensor index_put_along_dim(const Tensor& src, const Tensor& index, int64_t dim, int64_t size) {
  const char* op = "index_put_along_dim";
  TraceOp trace(op, {src, index});
  AlongDim a = check_along_dim(op, src, index, dim);
  CVG_CHECK(src.shape() == index.shape(), op, ": src shape ", src.shape(),
            " must equal index shape ", index.shape());
  CVG_CHECK(size >= 0, op, ": size must be non-negative, got ", size);
  a.n = size;
  Shape out_shape = src.shape();
  out_shape[a.d] = size;
  Tensor sc, ic;
  {
    NoGradGuard no_grad;
    sc = src.contiguous();
    ic = index.contiguous();
  }
  Tensor out = zeros(out_shape, src.options());
  on_device(op, src.device(), [&] { index_put_cpu(sc, ic, a.outer, a.n, a.inner, out, op); }, [&] {
#ifdef CVG_WITH_CUDA
    index_put_cuda(sc, ic, a.outer, a.n, a.inner, out, op);
#endif
  });
  if (!any_requires_grad({src})) return trace.result(out);
  SavedTensor si(index);
  const int d = a.d;
  return trace.result(record(op, out, {src}, [si, d](const Tensor& g, const Node& node) {
    return TensorList{index_get_along_dim(g, si.unpack(node), d)};
  }));
}

}  // namespace cvg
