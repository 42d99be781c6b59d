// Shape ops: argument checks, device dispatch and autograd. The kernels only copy; every
// backward is a differentiable op (narrow views for cat, pad_backward for pad, flip for flip).
#include "kernels/shape.h"

#include <algorithm>

#include "core/autograd.h"
#include "kernels/dispatch.h"
#include "core/trace.h"
#include "kernels/view.h"

namespace cvg {


const char* pad_mode_name(PadMode mode) {
  switch (mode) {
    case PadMode::constant: return "constant";
    case PadMode::reflect: return "reflect";
    case PadMode::replicate: return "replicate";
    case PadMode::circular: return "circular";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// cat, stack, split, chunk

Tensor cat(const TensorList& xs, int64_t dim) {
  TraceOp trace("cat", xs);
  CVG_CHECK(!xs.empty(), "cat: expected a non-empty list of tensors");
  for (size_t k = 0; k < xs.size(); ++k)
    CVG_CHECK(xs[k].defined(), "cat: tensor ", k, " is undefined");
  const Device dev = common_device("cat", xs);
  const Tensor& first = xs[0];
  CVG_CHECK(first.dim() > 0, "cat: zero-dimensional tensor 0 cannot be concatenated");
  const int d = normalize_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  shape[d] = 0;
  DType dt = first.dtype();
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    CVG_CHECK(x.dim() == first.dim(), "cat: tensor ", k, " has ", x.dim(),
              " dims but tensor 0 has ", first.dim(), " (shapes ", x.shape(), " and ",
              first.shape(), ")");
    for (int64_t e = 0; e < x.dim(); ++e)
      CVG_CHECK(e == d || x.shape()[e] == first.shape()[e], "cat: tensor ", k, " has shape ",
                x.shape(), " but tensor 0 has shape ", first.shape(),
                "; they must match in every dim except dim ", d);
    shape[d] += x.shape()[d];
    dt = promote_types(dt, x.dtype());
  }
  // Inputs of another dtype are converted first (differentiably), so the gradient of each
  // input comes back in its own dtype.
  TensorList inputs;
  for (const Tensor& x : xs) inputs.push_back(x.to(dt));
  TensorList dense;
  for (const Tensor& x : inputs) dense.push_back(x.detach().contiguous());
  Tensor out = Tensor::empty(shape, inputs[0].options());
  on_device("cat", dev, [&] { cat_cpu(dense, d, out); },
            [&] {
#ifdef CVG_WITH_CUDA
              cat_cuda(dense, d, out);
#endif
            });
  std::vector<int64_t> starts, sizes;
  int64_t start = 0;
  for (const Tensor& x : inputs) {
    starts.push_back(start);
    sizes.push_back(x.shape()[d]);
    start += x.shape()[d];
  }
  return trace.result(record("cat", out, inputs,
      [d, starts, sizes](const Tensor& g, const Node& n) {
        TensorList grads(starts.size());
        for (size_t k = 0; k < starts.size(); ++k)
          if (n.needs_grad(k)) grads[k] = narrow(g, d, starts[k], sizes[k]);
        return grads;
      }));
}

Tensor concat(const TensorList& xs, int64_t dim) { return cat(xs, dim); }

Tensor stack(const TensorList& xs, int64_t dim) {
  TraceOp trace("stack", xs);
  CVG_CHECK(!xs.empty(), "stack: expected a non-empty list of tensors");
  for (size_t k = 0; k < xs.size(); ++k) {
    CVG_CHECK(xs[k].defined(), "stack: tensor ", k, " is undefined");
    CVG_CHECK(xs[k].shape() == xs[0].shape(), "stack: tensor ", k, " has shape ", xs[k].shape(),
              " but tensor 0 has shape ", xs[0].shape(), "; all must be equal");
  }
  const int d = normalize_dim(dim, xs[0].dim() + 1, "stack");
  TensorList expanded;
  for (const Tensor& x : xs) expanded.push_back(unsqueeze(x, d));
  return trace.result(cat(expanded, d));
}

TensorList split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  TraceOp trace("split", {x});
  CVG_CHECK(x.dim() > 0, "split: cannot split a zero-dimensional tensor");
  const int d = normalize_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    CVG_CHECK(s >= 0, "split: sizes must be non-negative, got ", Shape(sizes));
    total += s;
  }
  CVG_CHECK(total == x.shape()[d], "split: sizes ", Shape(sizes), " add up to ", total,
            " but dim ", dim, " of shape ", x.shape(), " has size ", x.shape()[d]);
  TensorList pieces;
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(narrow(x, d, start, s));
    start += s;
  }
  return pieces;
}

TensorList split(const Tensor& x, int64_t split_size, int64_t dim) {
  CVG_CHECK(x.dim() > 0, "split: cannot split a zero-dimensional tensor");
  const int d = normalize_dim(dim, x.dim(), "split");
  const int64_t n = x.shape()[d];
  CVG_CHECK(split_size > 0 || (split_size == 0 && n == 0),
            "split: split_size must be positive, got ", split_size, " for dim ", dim,
            " of size ", n);
  std::vector<int64_t> sizes;
  if (n == 0) sizes.push_back(0);  // one empty piece, as PyTorch returns
  for (int64_t start = 0; start < n; start += split_size)
    sizes.push_back(std::min(split_size, n - start));
  return split(x, sizes, d);
}

TensorList chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  CVG_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  CVG_CHECK(x.dim() > 0, "chunk: cannot chunk a zero-dimensional tensor");
  const int d = normalize_dim(dim, x.dim(), "chunk");
  const int64_t n = x.shape()[d];
  // An empty dim splits into `chunks` empty pieces (split alone would give one).
  if (n == 0) return split(x, std::vector<int64_t>(chunks, 0), d);
  return split(x, (n + chunks - 1) / chunks, d);
}

// ---------------------------------------------------------------------------------------------
// pad

namespace {

// The left pad of every tensor dim (0 for dims that pads does not cover).
std::vector<int64_t> pad_lefts(const Shape& in_shape, const std::vector<int64_t>& pads) {
  std::vector<int64_t> left(in_shape.size(), 0);
  for (size_t k = 0; k < pads.size() / 2; ++k) left[in_shape.size() - 1 - k] = pads[2 * k];
  return left;
}

// The padded shape; throws naming the offending pads and dim when `mode` cannot pad x.
Shape padded_shape(const char* op, const Shape& in, const std::vector<int64_t>& pads,
                   PadMode mode) {
  const int64_t nd = static_cast<int64_t>(in.size());
  CVG_CHECK(pads.size() % 2 == 0, op, ": pads must come in (left, right) pairs, got ",
            pads.size(), " values ", Shape(pads));
  CVG_CHECK(static_cast<int64_t>(pads.size()) <= 2 * nd, op, ": ", pads.size(),
            " pad values ", Shape(pads), " cover more than the ", nd, " dims of shape ", in);
  Shape out = in;
  for (size_t k = 0; k < pads.size() / 2; ++k) {
    const int64_t d = nd - 1 - static_cast<int64_t>(k);
    const int64_t l = pads[2 * k], r = pads[2 * k + 1], n = in[d];
    out[d] = n + l + r;
    CVG_CHECK(out[d] >= 0, op, ": pads (", l, ", ", r, ") crop dim ", d, " of size ", n,
              " below zero (input shape ", in, ")");
    if (l <= 0 && r <= 0) continue;  // pure cropping reads only inside the input
    switch (mode) {
      case PadMode::constant: break;
      case PadMode::reflect:
        CVG_CHECK(l < n && r < n, op, ": reflect padding (", l, ", ", r, ") of dim ", d,
                  " must be less than its size ", n, " (input shape ", in, ")");
        break;
      case PadMode::replicate:
        CVG_CHECK(n > 0, op, ": replicate padding (", l, ", ", r, ") of dim ", d,
                  " needs a non-empty dim (input shape ", in, ")");
        break;
      case PadMode::circular:
        CVG_CHECK(l <= n && r <= n, op, ": circular padding (", l, ", ", r, ") of dim ", d,
                  " must not exceed its size ", n, " (input shape ", in, ")");
        break;
    }
  }
  return out;
}

}  // namespace

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode, double value) {
  TraceOp trace("pad", {x});
  CVG_CHECK(x.defined(), "pad: undefined input");
  CVG_CHECK(mode == PadMode::constant || value == 0.0, "pad: ", pad_mode_name(mode),
            " mode takes no fill value (got ", value, ")");
  const Shape out_shape = padded_shape("pad", x.shape(), pads, mode);
  const std::vector<int64_t> left = pad_lefts(x.shape(), pads);

  PadGeometry geom;
  geom.ndim = static_cast<int>(x.dim());
  geom.mode = mode;
  geom.in_offset = x.offset();
  for (int d = 0; d < geom.ndim; ++d) {
    geom.out_sizes[d] = out_shape[d];
    geom.in_sizes[d] = x.shape()[d];
    geom.in_strides[d] = x.strides()[d];
    geom.left[d] = left[d];
  }
  Tensor out = Tensor::empty(out_shape, x.options());
  on_device("pad", x.device(), [&] { pad_cpu(x, geom, value, out); },
            [&] {
#ifdef CVG_WITH_CUDA
              pad_cuda(x, geom, value, out);
#endif
            });
  const Shape in_shape = x.shape();
  return trace.result(record("pad", out, {x},
      [in_shape, pads, mode](const Tensor& g, const Node&) {
        return TensorList{pad_backward(g, in_shape, pads, mode)};
      }));
}

Tensor pad_backward(const Tensor& g, const Shape& input_shape, const std::vector<int64_t>& pads,
                    PadMode mode) {
  TraceOp trace("pad_backward", {g});
  CVG_CHECK(g.defined(), "pad_backward: undefined gradient");
  const Shape expected = padded_shape("pad_backward", input_shape, pads, mode);
  CVG_CHECK(g.shape() == expected, "pad_backward: gradient of shape ", g.shape(),
            " does not match the padded shape ", expected, " of input shape ", input_shape,
            " with pads ", Shape(pads));
  dispatch_floating(g.dtype(), "pad_backward", [](auto) {});
  const int64_t nd = static_cast<int64_t>(input_shape.size());
  // Fold one padded dim at a time (pad is separable): each pass turns the padded size of one
  // dim back into the input size, summing the border's gradient onto the elements it copied.
  Tensor cur = g.detach().contiguous();
  bool folded_any = false;
  for (size_t k = 0; k < pads.size() / 2; ++k) {
    const int d = static_cast<int>(nd - 1 - static_cast<int64_t>(k));
    if (pads[2 * k] == 0 && pads[2 * k + 1] == 0) continue;
    Shape folded = cur.shape();
    folded[d] = input_shape[d];
    const RowSplit rows = row_split(folded, d);
    const int64_t out_size = cur.shape()[d], left = pads[2 * k];
    Tensor next = Tensor::empty(folded, cur.options());
    on_device("pad_backward", g.device(),
              [&] { pad_fold_cpu(cur, rows, out_size, left, mode, next); },
              [&] {
#ifdef CVG_WITH_CUDA
                pad_fold_cuda(cur, rows, out_size, left, mode, next);
#endif
              });
    cur = next;
    folded_any = true;
  }
  // With nothing to fold the result must still be a fresh tensor: it gets its own grad_fn.
  if (!folded_any) cur = g.detach().clone();
  return trace.result(record("pad_backward", cur, {g},
      [pads, mode](const Tensor& gg, const Node&) {
        return TensorList{pad(gg, pads, mode, 0.0)};
      }));
}

// ---------------------------------------------------------------------------------------------
// flip

Tensor flip(const Tensor& x, const std::vector<int64_t>& dims) {
  TraceOp trace("flip", {x});
  CVG_CHECK(x.defined(), "flip: undefined input");
  FlipGeometry geom;
  geom.ndim = static_cast<int>(x.dim());
  geom.offset = x.offset();
  for (int d = 0; d < geom.ndim; ++d) {
    geom.sizes[d] = x.shape()[d];
    geom.strides[d] = x.strides()[d];
  }
  std::vector<int64_t> norm;
  for (int64_t dim : dims) {
    const int d = normalize_dim(dim, x.dim(), "flip");
    if (x.dim() == 0) continue;  // flipping a scalar is the identity, as in PyTorch
    CVG_CHECK(!geom.flipped[d], "flip: dim ", dim, " appears more than once in ", Shape(dims));
    geom.flipped[d] = true;
    norm.push_back(d);
  }
  Tensor out = Tensor::empty(x.shape(), x.options());
  on_device("flip", x.device(), [&] { flip_cpu(x, geom, out); },
            [&] {
#ifdef CVG_WITH_CUDA
              flip_cuda(x, geom, out);
#endif
            });
  return trace.result(record("flip", out, {x}, [norm](const Tensor& g, const Node&) {
    return TensorList{flip(g, norm)};
  }));
}

}  // namespace cvg
