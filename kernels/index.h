#pragma once
// Indexing ops that copy or accumulate along one dim, with PyTorch's names and semantics.
// Index tensors are int32 or int64 (any shape the op allows, any strides), live on the same
// device as the data, carry no gradient, and must hold values in [0, size) of the indexed dim:
// negative or too-large values are an Error naming the op, the value and the size (checked on
// the host, which costs a device-to-host copy of the index for CUDA tensors).
//
//   index_select(x, dim, index)          index 1-D (or 0-d, read as one element):
//       out has x's shape with size(dim) = index.numel();  out[.., k, ..] = x[.., index[k], ..]
//   index_add(self, dim, index, source)  source has self's shape with size(dim) = index.numel():
//       out = self;  out[.., index[k], ..] += source[.., k, ..]   (repeated indices accumulate)
//   gather(x, dim, index)                index has x.dim() dims, index.size(d) <= x.size(d) for
//       d != dim; out has index's shape:  out[i] = x[i with i_dim replaced by index[i]]
//   scatter_add(self, dim, index, src)   index as for gather (against self), src.size(d) >=
//       index.size(d) (only src's leading index-shaped block is used):
//       out = self;  out[i with i_dim replaced by index[i]] += src[i]   for every i of index
//
// Gradients: index_select <-> index_add and gather <-> scatter_add are each other's adjoints,
// so every backward is one of these four ops, and second derivatives work:
//   d index_select / dx      = index_add(zeros, dim, index, g)
//   d index_add / d self     = g,   d index_add / d source   = index_select(g, dim, index)
//   d gather / dx            = scatter_add(zeros, dim, index, g)
//   d scatter_add / d self   = g,   d scatter_add / d src    = gather(g, dim, index)
//
// Summation order: on the CPU every destination element receives its sources in increasing
// order of their position in `index`, whatever the thread count. CUDA: see index_cuda.cu
// (atomics by default; a fixed order matching the CPU under deterministic_algorithms()).
#include "core/tensor.h"
#include "kernels/index_math.h"

namespace cvg {

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& source);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);

// Raw kernels (no autograd, no checks). index is contiguous int64 on the data's device with
// values already validated; x/src/self are contiguous; out is a fresh contiguous tensor (for the
// accumulating ops it already holds a copy of self). `rows` splits the data at dim as
// [outer, size, inner] (x for index_select, out for index_add).
void index_select_cpu(const Tensor& x, const RowSplit& rows, const Tensor& index,
                      const Tensor& out);
void index_add_cpu(const Tensor& out, const RowSplit& rows, const Tensor& index, const Tensor& src);
void gather_cpu(const Tensor& x, const IndexedGeometry& geom, const Tensor& index,
                const Tensor& out);
void scatter_add_cpu(const Tensor& out, const IndexedGeometry& geom, const Tensor& index,
                     const Tensor& src);
#ifdef CVG_WITH_CUDA
void index_select_cuda(const Tensor& x, const RowSplit& rows, const Tensor& index,
                       const Tensor& out);
// Deterministic when `by_dest_offsets` is defined: then sources are grouped by destination row
// (CSR: rows j's sources are by_dest_order[by_dest_offsets[j] .. by_dest_offsets[j+1]), in
// increasing order), both int64 on the device.
void index_add_cuda(const Tensor& out, const RowSplit& rows, const Tensor& index,
                    const Tensor& src, const Tensor& by_dest_offsets, const Tensor& by_dest_order);
void gather_cuda(const Tensor& x, const IndexedGeometry& geom, const Tensor& index,
                 const Tensor& out);
void scatter_add_cuda(const Tensor& out, const IndexedGeometry& geom, const Tensor& index,
                      const Tensor& src, bool deterministic);
#endif

}  // namespace cvg
