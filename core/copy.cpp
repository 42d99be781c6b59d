#include "core/copy.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/strided.h"
#ifdef CVG_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace cvg {

namespace {

// A transposing copy: after coalescing, the destination steps by 1 along the innermost
// dimension and the source along the one outside it (contiguous() of a transpose or of most
// permutes). Element order would read the source a whole cache line per element; square tiles
// of kTile x kTile elements touch kTile lines of each side instead, which stay in L1 while the
// tile is copied. Returns false (nothing done) for other layouts.
constexpr int64_t kTile = 32;

template <typename D, typename S>
bool copy_transposed(D* out, const S* in, const CoalescedDims<2>& c,
                     const StridedOperands<2>& ops) {
  if (c.nd < 2) return false;
  const int r = c.nd - 2, q = c.nd - 1;  // tile rows and columns (the innermost dimension)
  if (c.stride[0][q] != 1 || c.stride[1][r] != 1 || c.stride[1][q] == 1) return false;
  const int64_t rows = c.size[r], cols = c.size[q];
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  int64_t outer = 1;
  for (int d = 0; d < r; ++d) outer *= c.size[d];
  // Work item: one band of kTile rows of one outer index, every column tile of it.
  parallel_for(outer * row_tiles, std::max<int64_t>(1, 4096 / (kTile * cols) + 1),
               [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t rem = item / row_tiles;
      int64_t od = ops.offsets[0], os = ops.offsets[1];
      for (int d = r - 1; d >= 0; --d) {
        const int64_t i = rem % c.size[d];
        rem /= c.size[d];
        od += i * c.stride[0][d];
        os += i * c.stride[1][d];
      }
      const int64_t i0 = (item % row_tiles) * kTile, i1 = std::min(rows, i0 + kTile);
      const int64_t ds = c.stride[0][r], ss = c.stride[1][q];
      for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
        const int64_t j1 = std::min(cols, j0 + kTile);
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = j0; j < j1; ++j)
            out[od + i * ds + j] = static_cast<D>(in[os + i + j * ss]);
      }
    }
  });
  return true;
}

void copy_cpu(const Tensor& dst, const Tensor& src, const char* op) {
  const Shape sst = broadcast_strides(src, dst.shape(), op);
  dispatch_dtype(dst.dtype(), op, [&](auto d) {
    using D = decltype(d);
    dispatch_dtype(src.dtype(), op, [&](auto s) {
      using S = decltype(s);
      D* out = static_cast<D*>(dst.storage()->data());
      const S* in = static_cast<const S*>(src.storage()->data());
      StridedOperands<2> ops{{dst.strides().data(), sst.data()}, {dst.offset(), src.offset()}};
      if (copy_transposed(out, in, CoalescedDims<2>(dst.shape(), ops), ops)) return;
      strided_for_each<2>(dst.shape(), ops, [&](const std::array<int64_t, 2>& o) {
        out[o[0]] = static_cast<D>(in[o[1]]);
      });
    });
  });
}

// The bytes [first, last) of the storage that the elements of t occupy (a superset for
// non-dense views).
std::pair<int64_t, int64_t> byte_extent(const Tensor& t) {
  int64_t lo = t.offset(), hi = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t span = (t.shape()[d] - 1) * t.strides()[d];
    (span < 0 ? lo : hi) += span;
  }
  const int64_t es = static_cast<int64_t>(dtype_size(t.dtype()));
  return {lo * es, (hi + 1) * es};
}

}  // namespace

void copy_into(const Tensor& dst, const Tensor& src, const char* op) {
  CVG_CHECK(dst.defined() && src.defined(), op, ": undefined tensor");
  if (dst.numel() == 0) return;
  if (dst.storage() == src.storage() && src.numel() > 0) {
    if (dst.shape() == src.shape() && dst.strides() == src.strides() &&
        dst.offset() == src.offset() && dst.dtype() == src.dtype())
      return;  // copying a view onto itself
    // The elementwise loop would read source elements it has already overwritten
    // (x[1:].copy_(x[:-1]), m.copy_(m.t())); read the whole source first, as NumPy does.
    const auto [dlo, dhi] = byte_extent(dst);
    const auto [slo, shi] = byte_extent(src);
    if (dlo < shi && slo < dhi) {
      Tensor tmp = Tensor::empty(src.shape(), src.options());
      copy_into(tmp, src, op);
      return copy_into(dst, tmp, op);
    }
  }
  if (dst.device() == src.device()) {
    if (dst.device().is_cpu()) return copy_cpu(dst, src, op);
#ifdef CVG_WITH_CUDA
    return copy_into_cuda(dst, src, op);
#endif
  }
#ifdef CVG_WITH_CUDA
  // Across devices: make a dense source of dst's dtype and shape on the source device, move
  // the bytes, then (if dst is not dense) scatter on the destination device.
  Tensor dense_src = Tensor::empty(dst.shape(), src.options().with_dtype(dst.dtype()));
  copy_into(dense_src, src, op);
  Tensor dense_dst = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.options());
  const size_t nbytes = static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype());
  cuda_memcpy(dense_dst.raw_data(), dense_src.raw_data(), nbytes,
              dst.is_cuda() ? CopyKind::host_to_device : CopyKind::device_to_host, op);
  if (!dst.is_contiguous()) copy_into(dst, dense_dst, op);
#else
  fail(op, ": cannot copy from ", src.device().str(), " to ", dst.device().str(),
       " (built without CUDA)");
#endif
}

}  // namespace cvg
