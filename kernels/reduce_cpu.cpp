// CPU row reductions: x is contiguous [outer, inner]; each output element combines one row.
// Rows are split across threads; a single long row is summed in fixed-size blocks whose
// partials are combined in order, so the result does not depend on the thread count.
#include <vector>

#include "core/parallel.h"
#include "kernels/reduce_math.h"

namespace cvg {

namespace {
template <ReduceKind K, typename T>
void reduce_rows(const T* x, int64_t outer, int64_t inner, T* out) {
  using A = std::conditional_t<K == ReduceKind::sum, double, T>;
  if (outer >= num_threads() || inner < 65536) {
    parallel_for(outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(inner, 1)),
                 [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        A acc = reduce_identity<K, A>();
        const T* row = x + o * inner;
        for (int64_t i = 0; i < inner; ++i) acc = reduce_combine<K, A>(acc, static_cast<A>(row[i]));
        out[o] = static_cast<T>(acc);
      }
    });
    return;
  }
  constexpr int64_t kBlock = 16384;
  const int64_t nblocks = (inner + kBlock - 1) / kBlock;
  std::vector<A> partial(nblocks);
  for (int64_t o = 0; o < outer; ++o) {
    const T* row = x + o * inner;
    parallel_for(nblocks, 1, [&](int64_t b, int64_t e) {
      for (int64_t blk = b; blk < e; ++blk) {
        A acc = reduce_identity<K, A>();
        const int64_t end = std::min(inner, (blk + 1) * kBlock);
        for (int64_t i = blk * kBlock; i < end; ++i)
          acc = reduce_combine<K, A>(acc, static_cast<A>(row[i]));
        partial[blk] = acc;
      }
    });
    A acc = reduce_identity<K, A>();
    for (A p : partial) acc = reduce_combine<K, A>(acc, p);
    out[o] = static_cast<T>(acc);
  }
}
}  // namespace

void reduce_rows_cpu(ReduceKind kind, const Tensor& x, int64_t outer, int64_t inner,
                     const Tensor& out) {
  dispatch_floating(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    switch (kind) {
      case ReduceKind::sum: return reduce_rows<ReduceKind::sum, T>(x.data<T>(), outer, inner, out.data<T>());
      case ReduceKind::max: return reduce_rows<ReduceKind::max, T>(x.data<T>(), outer, inner, out.data<T>());
      case ReduceKind::min: return reduce_rows<ReduceKind::min, T>(x.data<T>(), outer, inner, out.data<T>());
    }
  });
}

}  // namespace cvg
