// Indexing ops: argument and index-range checks, device dispatch and autograd. Each backward
// is one of the four ops of this file (see kernels/index.h), so they differentiate each other.
#include "kernels/index.h"

#include <algorithm>

#include "core/autograd.h"
#include "kernels/dispatch.h"
#include "core/determinism.h"
#include "core/trace.h"
#include "kernels/view.h"

namespace cvg {

namespace {

// The index as a contiguous int64 tensor on its own device (a no-op for the usual contiguous
// int64 index), plus its values on the host for the range check.
struct CheckedIndex {
  Tensor dense;                 // int64, contiguous, on the data's device
  std::vector<int64_t> host;    // the same values on the host
};

CheckedIndex checked_index(const char* op, const Tensor& index, int64_t size, int dim) {
  CVG_CHECK(index.defined(), op, ": undefined index");
  CVG_CHECK(index.dtype() == DType::int32 || index.dtype() == DType::int64, op,
            ": index must be int32 or int64, got ", dtype_name(index.dtype()));
  CheckedIndex c;
  c.dense = index.detach().to(DType::int64).contiguous();
  c.host = c.dense.to_vector<int64_t>();
  for (size_t p = 0; p < c.host.size(); ++p) {
    const int64_t v = c.host[p];
    if (v >= 0 && v < size) continue;
    // Name the offending element by its multi-index in the index tensor.
    Shape pos(index.dim());
    int64_t rem = static_cast<int64_t>(p);
    for (int64_t d = index.dim() - 1; d >= 0; --d) {
      pos[d] = rem % index.shape()[d];
      rem /= index.shape()[d];
    }
    fail(op, ": index ", v, " at position ", pos, " is out of range for dim ", dim, " of size ",
         size, " (valid: 0..", size - 1, ")");
  }
  return c;
}

void check_same_dtype(const char* op, const Tensor& self, const char* other_name,
                      const Tensor& other) {
  CVG_CHECK(self.dtype() == other.dtype(), op, ": self is ", dtype_name(self.dtype()), " but ",
            other_name, " is ", dtype_name(other.dtype()), "; they must have the same dtype");
}

IndexedGeometry indexed_geometry(const Shape& index_shape, int dim, const Shape& strides,
                                 int64_t offset) {
  IndexedGeometry g;
  g.ndim = static_cast<int>(index_shape.size());
  g.dim = dim;
  g.offset = offset;
  for (int d = 0; d < g.ndim; ++d) {
    g.sizes[d] = index_shape[d];
    g.strides[d] = strides[d];
  }
  return g;
}

// gather/scatter_add: index.dim() == data.dim() and index.size(d) <= data.size(d), d != dim.
void check_gather_shapes(const char* op, const char* data_name, const Tensor& data, int dim,
                         const Tensor& index) {
  CVG_CHECK(index.dim() == data.dim(), op, ": index must have as many dims as ", data_name,
            " (", data.dim(), "), got index shape ", index.shape(), " for ", data_name,
            " shape ", data.shape());
  for (int64_t d = 0; d < data.dim(); ++d)
    CVG_CHECK(d == dim || index.shape()[d] <= data.shape()[d], op, ": index shape ",
              index.shape(), " exceeds ", data_name, " shape ", data.shape(), " in dim ", d,
              " (only dim ", dim, " may be larger)");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// index_select / index_add

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  TraceOp trace("index_select", {x, index});
  CVG_CHECK(x.defined(), "index_select: undefined input");
  const Device dev = common_device("index_select", {x, index});
  CVG_CHECK(x.dim() > 0, "index_select: x must have at least one dim, got a 0-d tensor");
  const int d = normalize_dim(dim, x.dim(), "index_select");
  CVG_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got shape ", index.shape());
  const CheckedIndex idx = checked_index("index_select", index, x.shape()[d], d);
  Shape shape = x.shape();
  shape[d] = index.numel();
  const Tensor xc = x.detach().contiguous();
  const RowSplit rows = row_split(xc.shape(), d);
  Tensor out = Tensor::empty(shape, x.options());
  on_device("index_select", dev, [&] { index_select_cpu(xc, rows, idx.dense, out); },
            [&] {
#ifdef CVG_WITH_CUDA
              index_select_cuda(xc, rows, idx.dense, out);
#endif
            });
  const Shape in_shape = x.shape();
  const SavedTensor saved_index(index);
  return trace.result(record("index_select", out, {x},
      [in_shape, d, saved_index](const Tensor& g, const Node& n) {
        return TensorList{index_add(zeros(in_shape, g.options()), d, saved_index.unpack(n), g)};
      }));
}

Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& source) {
  TraceOp trace("index_add", {self, index, source});
  CVG_CHECK(self.defined() && source.defined(), "index_add: undefined input");
  const Device dev = common_device("index_add", {self, index, source});
  CVG_CHECK(self.dim() > 0, "index_add: self must have at least one dim, got a 0-d tensor");
  const int d = normalize_dim(dim, self.dim(), "index_add");
  CVG_CHECK(index.dim() <= 1, "index_add: index must be 1-D, got shape ", index.shape());
  check_same_dtype("index_add", self, "source", source);
  Shape expected = self.shape();
  expected[d] = index.numel();
  CVG_CHECK(source.shape() == expected, "index_add: source has shape ", source.shape(),
            " but self shape ", self.shape(), " with ", index.numel(), " indices along dim ", d,
            " needs ", expected);
  const CheckedIndex idx = checked_index("index_add", index, self.shape()[d], d);
  const Tensor src = source.detach().contiguous();
  Tensor out = self.detach().clone();
  const RowSplit rows = row_split(out.shape(), d);
  on_device("index_add", dev, [&] { index_add_cpu(out, rows, idx.dense, src); },
            [&] {
#ifdef CVG_WITH_CUDA
              // Integer sums are exact in any order, and there are no atomics for uint8/bool:
              // they always take the ordered path, as floats do in deterministic mode.
              Tensor offsets, order;
              if (deterministic_algorithms() || !is_floating(out.dtype())) {
                // Counting sort of source positions k by destination row index[k] (stable, so
                // each row lists its sources in increasing k, the CPU's order).
                std::vector<int64_t> off(rows.size + 1, 0), ord(idx.host.size());
                for (int64_t v : idx.host) ++off[v + 1];
                for (int64_t j = 0; j < rows.size; ++j) off[j + 1] += off[j];
                std::vector<int64_t> fill(off.begin(), off.end() - 1);
                for (size_t k = 0; k < idx.host.size(); ++k)
                  ord[fill[idx.host[k]]++] = static_cast<int64_t>(k);
                const TensorOptions on_dev =
                    TensorOptions{}.with_dtype(DType::int64).with_device(dev);
                offsets = from_vector(off, {rows.size + 1}, on_dev);
                order = from_vector(ord, {static_cast<int64_t>(ord.size())}, on_dev);
              }
              index_add_cuda(out, rows, idx.dense, src, offsets, order);
#endif
            });
  const SavedTensor saved_index(index);
  return trace.result(record("index_add", out, {self, Tensor(), source},
      [d, saved_index](const Tensor& g, const Node& n) {
        return TensorList{n.needs_grad(0) ? g : Tensor(), Tensor(),
                          n.needs_grad(2) ? index_select(g, d, saved_index.unpack(n)) : Tensor()};
      }));
}

// ---------------------------------------------------------------------------------------------
// gather / scatter_add

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  TraceOp trace("gather", {x, index});
  CVG_CHECK(x.defined(), "gather: undefined input");
  const Device dev = common_device("gather", {x, index});
  const int d = normalize_dim(dim, x.dim(), "gather");
  CVG_CHECK(index.defined(), "gather: undefined index");
  check_gather_shapes("gather", "x", x, d, index);
  // A 0-d x is indexed like a 1-element 1-D one (PyTorch does the same).
  const int64_t size = x.dim() == 0 ? 1 : x.shape()[d];
  const CheckedIndex idx = checked_index("gather", index, size, d);
  const IndexedGeometry geom = indexed_geometry(index.shape(), d, x.strides(), x.offset());
  Tensor out = Tensor::empty(index.shape(), x.options());
  on_device("gather", dev, [&] { gather_cpu(x, geom, idx.dense, out); },
            [&] {
#ifdef CVG_WITH_CUDA
              gather_cuda(x, geom, idx.dense, out);
#endif
            });
  const Shape in_shape = x.shape();
  const SavedTensor saved_index(index);
  return trace.result(record("gather", out, {x},
      [in_shape, d, saved_index](const Tensor& g, const Node& n) {
        return TensorList{scatter_add(zeros(in_shape, g.options()), d, saved_index.unpack(n), g)};
      }));
}

Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  TraceOp trace("scatter_add", {self, index, src});
  CVG_CHECK(self.defined() && src.defined(), "scatter_add: undefined input");
  const Device dev = common_device("scatter_add", {self, index, src});
  const int d = normalize_dim(dim, self.dim(), "scatter_add");
  CVG_CHECK(index.defined(), "scatter_add: undefined index");
  check_same_dtype("scatter_add", self, "src", src);
  check_gather_shapes("scatter_add", "self", self, d, index);
  CVG_CHECK(src.dim() == index.dim(), "scatter_add: src must have as many dims as index (",
            index.dim(), "), got src shape ", src.shape(), " for index shape ", index.shape());
  for (int64_t e = 0; e < index.dim(); ++e)
    CVG_CHECK(index.shape()[e] <= src.shape()[e], "scatter_add: index shape ", index.shape(),
              " exceeds src shape ", src.shape(), " in dim ", e);
  // Only src's index-shaped leading block takes part: cut it with differentiable views, so the
  // rest of src gets a zero gradient through narrow's backward.
  Tensor used = src;
  for (int64_t e = 0; e < index.dim(); ++e)
    if (used.shape()[e] != index.shape()[e]) used = narrow(used, e, 0, index.shape()[e]);
  const int64_t size = self.dim() == 0 ? 1 : self.shape()[d];
  const CheckedIndex idx = checked_index("scatter_add", index, size, d);
  const Tensor srcc = used.detach().contiguous();
  Tensor out = self.detach().clone();
  const IndexedGeometry geom = indexed_geometry(index.shape(), d, out.strides(), 0);
  on_device("scatter_add", dev, [&] { scatter_add_cpu(out, geom, idx.dense, srcc); },
            [&] {
#ifdef CVG_WITH_CUDA
              scatter_add_cuda(out, geom, idx.dense, srcc,
                               deterministic_algorithms() || !is_floating(out.dtype()));
#endif
            });
  const SavedTensor saved_index(index);
  return trace.result(record("scatter_add", out, {self, Tensor(), used},
      [d, saved_index](const Tensor& g, const Node& n) {
        return TensorList{n.needs_grad(0) ? g : Tensor(), Tensor(),
                          n.needs_grad(2) ? gather(g, d, saved_index.unpack(n)) : Tensor()};
      }));
}

}  // namespace cvg
