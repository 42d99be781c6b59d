#include "kernels/view.h"

#include <algorithm>
#include <numeric>

#include "core/autograd.h"
#include "core/copy.h"
#include "core/trace.h"
#include "kernels/reduce.h"

namespace cvg {

namespace {

Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Shape& from) {
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      CVG_CHECK(infer < 0, op, ": only one dimension can be -1, got ", shape);
      infer = static_cast<int>(i);
    } else {
      CVG_CHECK(out[i] >= 0, op, ": invalid size in shape ", shape);
      known *= out[i];
    }
  }
  if (infer >= 0) {
    CVG_CHECK(known != 0 && numel % known == 0, op, ": cannot reshape ", from, " (", numel,
              " elements) to ", shape);
    out[infer] = numel / known;
  }
  CVG_CHECK(numel_of(out) == numel, op, ": cannot reshape ", from, " (", numel,
            " elements) to ", shape, " (", numel_of(out), " elements)");
  return out;
}

// A view of x recorded with backward bwd(g) -> grad of x.
template <typename Backward>
Tensor view_op(const char* name, const Tensor& x, const Shape& shape, const Shape& strides,
               int64_t offset, Backward bwd) {
  TraceOp trace(name, {x});
  Tensor out = make_view(x, shape, strides, offset);
  return trace.result(record(name, out, {x}, [bwd](const Tensor& g, const Node&) {
    return TensorList{bwd(g)};
  }));
}

// Gradient of slice: zeros of the input's shape with g written into the sliced positions.
// Its own backward slices again, so second derivatives pass through.
Tensor slice_backward(const Tensor& g, const Shape& in_shape, int dim, int64_t start,
                      int64_t step) {
  TraceOp trace("slice_backward", {g});
  Tensor out = zeros(in_shape, g.options());
  Shape st = out.strides();
  Shape sh = out.shape();
  sh[dim] = g.shape()[dim];
  const int64_t offset = start * st[dim];
  st[dim] *= step;
  copy_into(make_view(out, sh, st, offset), g, "slice_backward");
  const int64_t len = g.shape()[dim];
  return trace.result(record("slice_backward", out, {g},
      [dim, start, step, len](const Tensor& gg, const Node&) {
        return TensorList{slice(gg, dim, start, start + (len - 1) * step + 1, step)};
      }));
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  const Shape target = infer_shape(shape, x.numel(), "reshape", x.shape());
  check_shape(target, "reshape");
  const Tensor src = x.contiguous();
  const Shape in_shape = x.shape();
  return view_op("reshape", src, target, contiguous_strides(target), src.offset(),
                 [in_shape](const Tensor& g) { return reshape(g, in_shape); });
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  const int s = normalize_dim(start_dim, x.dim(), "flatten");
  const int e = normalize_dim(end_dim, x.dim(), "flatten");
  CVG_CHECK(s <= e, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t n = 1;
  for (int d = s; d <= e; ++d) n *= x.shape()[d];
  shape.push_back(n);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& perm) {
  CVG_CHECK(static_cast<int64_t>(perm.size()) == x.dim(), "permute: got ", perm.size(),
            " dims for a ", x.dim(), "-d tensor of shape ", x.shape());
  std::vector<int64_t> p(perm.size()), inverse(perm.size());
  std::vector<bool> used(perm.size(), false);
  Shape shape(perm.size()), strides(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    p[i] = normalize_dim(perm[i], x.dim(), "permute");
    CVG_CHECK(!used[p[i]], "permute: dim ", perm[i], " repeats in ", Shape(perm));
    used[p[i]] = true;
    shape[i] = x.shape()[p[i]];
    strides[i] = x.strides()[p[i]];
    inverse[p[i]] = static_cast<int64_t>(i);
  }
  return view_op("permute", x, shape, strides, x.offset(),
                 [inverse](const Tensor& g) { return permute(g, inverse); });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  const int d0 = normalize_dim(dim0, x.dim(), "transpose");
  const int d1 = normalize_dim(dim1, x.dim(), "transpose");
  std::vector<int64_t> perm(x.dim());
  std::iota(perm.begin(), perm.end(), 0);
  if (x.dim() > 0) std::swap(perm[d0], perm[d1]);  // a 0-d tensor accepts dims 0/-1, no-op
  return permute(x, perm);
}

// unsqueeze and squeeze only add or drop size-1 dims, so they are views whatever the input's
// strides (the stride of a size-1 dim is never used to address an element).
Tensor unsqueeze(const Tensor& x, int64_t dim) {
  const int d = normalize_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape(), strides = x.strides();
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, d < x.dim() ? x.strides()[d] * x.shape()[d] : 1);
  check_shape(shape, "unsqueeze");
  return view_op("unsqueeze", x, shape, strides, x.offset(),
                 [d](const Tensor& g) { return squeeze(g, d); });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  const int d = normalize_dim(dim, x.dim(), "squeeze");
  if (x.dim() == 0) return x;  // dim 0/-1 of a 0-d tensor: nothing to squeeze
  CVG_CHECK(x.shape()[d] == 1, "squeeze: dim ", dim, " has size ", x.shape()[d],
            ", not 1 (shape ", x.shape(), ")");
  Shape shape = x.shape(), strides = x.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return view_op("squeeze", x, shape, strides, x.offset(),
                 [d](const Tensor& g) { return unsqueeze(g, d); });
}

Tensor squeeze(const Tensor& x) {
  Shape shape, strides;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (x.shape()[i] != 1) {
      shape.push_back(x.shape()[i]);
      strides.push_back(x.strides()[i]);
    }
  const Shape in_shape = x.shape();
  return view_op("squeeze", x, shape, strides, x.offset(),
                 [in_shape](const Tensor& g) { return reshape(g, in_shape); });
}

Tensor expand(const Tensor& x, const Shape& shape) {
  CVG_CHECK(shape.size() >= static_cast<size_t>(x.dim()), "expand: cannot expand shape ",
            x.shape(), " to fewer dims ", shape);
  Shape target = shape;
  const size_t lead = shape.size() - x.dim();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (target[i] == -1) {
      CVG_CHECK(i >= lead, "expand: -1 is not allowed for the new leading dim ", i);
      target[i] = x.shape()[i - lead];
    }
  }
  check_shape(target, "expand");
  const Shape strides = broadcast_strides(x, target, "expand");
  const Shape in_shape = x.shape();
  return view_op("expand", x, target, strides, x.offset(),
                 [in_shape](const Tensor& g) { return sum_to(g, in_shape); });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  const int d = normalize_dim(dim, x.dim(), "slice");
  CVG_CHECK(x.dim() > 0, "slice: cannot slice a 0-d tensor");
  CVG_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = x.shape()[d];
  auto wrap = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  const int64_t s = wrap(start), e = std::max(wrap(end), wrap(start));
  const int64_t len = (e - s + step - 1) / step;
  Shape shape = x.shape(), strides = x.strides();
  shape[d] = len;
  strides[d] *= step;
  const Shape in_shape = x.shape();
  return view_op("slice", x, shape, strides, x.offset() + s * x.strides()[d],
                 [in_shape, d, s, step](const Tensor& g) {
                   return slice_backward(g, in_shape, d, s, step);
                 });
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  const int d = normalize_dim(dim, x.dim(), "narrow");
  CVG_CHECK(x.dim() > 0, "narrow: cannot narrow a 0-d tensor");
  CVG_CHECK(start >= 0 && length >= 0 && start + length <= x.shape()[d], "narrow: range [",
            start, ", ", start + length, ") is outside dim ", dim, " of size ", x.shape()[d]);
  return slice(x, d, start, start + length);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  const int d = normalize_dim(dim, x.dim(), "select");
  CVG_CHECK(x.dim() > 0, "select: cannot select from a 0-d tensor");
  const int64_t n = x.shape()[d];
  CVG_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ", dim,
            " of size ", n);
  const int64_t i = index < 0 ? index + n : index;
  return squeeze(slice(x, d, i, i + 1), d);
}

}  // namespace cvg
