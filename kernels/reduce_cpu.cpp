// CPU row reductions: x is contiguous [outer, inner]; each output element folds one row with a
// reducer from kernels/reduce_math.h. Every row is folded the same way whatever the thread
// count: blocks of kBlock elements, each folded left to right (sums: in fixed lanes, see
// fold_block for LaneSumReducer), then the block states combined in order. Threads take whole rows when there are several, or the blocks of a single long
// row; both schedules perform the same combines in the same order, so the result never depends
// on the number of threads.
#include <algorithm>
#include <vector>

#include "core/parallel.h"
#include "kernels/reduce.h"

namespace cvg {

namespace {

constexpr int64_t kBlock = 16384;

template <typename R, typename T>
typename R::State fold_block(const R& r, const T* row, int64_t begin, int64_t end) {
  using A = decltype(r.value(r.identity()));
  typename R::State s = r.identity();
  for (int64_t i = begin; i < end; ++i) s = r.update(s, static_cast<A>(row[i]), i);
  return s;
}

// Sums: the generic fold above is one long dependency chain (each add waits for the previous
// one, and without -ffast-math the compiler may not reorder it), so a contiguous block is
// summed instead in kSumLanes independent double partials (lane l takes elements l,
// l + kSumLanes, ...), which the compiler keeps in vector registers, then added pairwise in a
// fixed tree. The order depends only on the block's bounds, never on the thread count. Still
// in double, as the generic reducer: only the rounding of the sum changes. 32 lanes = 8 AVX2
// registers: an add has a latency of about 4 cycles and two can start per cycle, so 8
// independent chains keep the adders busy (16 lanes measured ~1.5x slower).
constexpr int64_t kSumLanes = 32;

struct LaneSumReducer : SimpleReducer<ReduceKind::sum, double> {};

template <typename T>
double sum_lanes(const T* p, int64_t n) {
  double acc[kSumLanes] = {};
  const int64_t full = n - n % kSumLanes;
  for (int64_t i = 0; i < full; i += kSumLanes)
    for (int64_t l = 0; l < kSumLanes; ++l) acc[l] += static_cast<double>(p[i + l]);
  for (int64_t i = full; i < n; ++i) acc[i - full] += static_cast<double>(p[i]);
  for (int64_t h = kSumLanes / 2; h > 0; h /= 2)
    for (int64_t l = 0; l < h; ++l) acc[l] += acc[l + h];
  return acc[0];
}

// x86-64 builds target SSE2 (two doubles per vector); sum_lanes is compiled again for AVX2
// (four) and AVX-512 (eight), and the widest copy the CPU has is used. Widening float to double
// is the bottleneck on rows that sit in cache, and the wider copies do it for more elements per
// instruction (AVX-512 halved the time of 256 rows of 1000 against AVX2). The lanes are
// explicit and there is no FMA, so every copy adds the same numbers in the same order and
// returns the same bits.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <typename T>
__attribute__((target("avx2"), flatten)) double sum_lanes_avx2(const T* p, int64_t n) {
  return sum_lanes(p, n);
}
template <typename T>
__attribute__((target("avx512f"), flatten)) double sum_lanes_avx512(const T* p, int64_t n) {
  return sum_lanes(p, n);
}
#endif

template <typename T>
double fold_block(const LaneSumReducer&, const T* row, int64_t begin, int64_t end) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (__builtin_cpu_supports("avx512f")) return sum_lanes_avx512(row + begin, end - begin);
  if (__builtin_cpu_supports("avx2")) return sum_lanes_avx2(row + begin, end - begin);
#endif
  return sum_lanes(row + begin, end - begin);
}

template <typename R, typename T, typename Emit>
void reduce_rows_with(const R& r, const T* x, int64_t outer, int64_t inner, const Emit& emit) {
  using State = typename R::State;
  const int64_t nblocks = (inner + kBlock - 1) / kBlock;
  if (outer != 1 || nblocks < 2) {
    parallel_for(outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(inner, 1)),
                 [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const T* row = x + o * inner;
        State s = r.identity();
        for (int64_t blk = 0; blk < nblocks; ++blk)
          s = r.combine(s, fold_block(r, row, blk * kBlock, std::min(inner, (blk + 1) * kBlock)));
        emit(r, o, s);
      }
    });
    return;
  }
  // One long row: blocks in parallel, partials combined in block order.
  std::vector<State> partial(nblocks);
  parallel_for(nblocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk)
      partial[blk] = fold_block(r, x, blk * kBlock, std::min(inner, (blk + 1) * kBlock));
  });
  State s = r.identity();
  for (const State& p : partial) s = r.combine(s, p);
  emit(r, 0, s);
}

// Sums and the parameterised statistics accumulate in double; max/min are exact in T.
template <typename T>
void reduce_rows_typed(ReduceKind kind, const T* x, int64_t outer, int64_t inner, T* out,
                       const ReduceParams& params) {
  const ValueEmit<T> emit{out};
  switch (kind) {
    case ReduceKind::sum:
      return reduce_rows_with(LaneSumReducer{}, x, outer, inner, emit);
    case ReduceKind::max:
      return reduce_rows_with(SimpleReducer<ReduceKind::max, T>{}, x, outer, inner, emit);
    case ReduceKind::min:
      return reduce_rows_with(SimpleReducer<ReduceKind::min, T>{}, x, outer, inner, emit);
    case ReduceKind::var:
      return reduce_rows_with(VarReducer<double>{params.ddof}, x, outer, inner, emit);
    case ReduceKind::logsumexp:
      return reduce_rows_with(LogSumExpReducer<double>{}, x, outer, inner, emit);
    case ReduceKind::norm:
      return reduce_rows_with(NormReducer<double>{params.p}, x, outer, inner, emit);
  }
}

}  // namespace

void reduce_rows_cpu(ReduceKind kind, const Tensor& x, int64_t outer, int64_t inner,
                     const Tensor& out, const ReduceParams& params) {
  dispatch_floating(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    reduce_rows_typed<T>(kind, x.data<T>(), outer, inner, out.data<T>(), params);
  });
}

void argreduce_rows_cpu(bool is_max, const Tensor& x, int64_t outer, int64_t inner,
                        const Tensor& values, const Tensor& indices) {
  dispatch_floating(x.dtype(), is_max ? "argmax" : "argmin", [&](auto tag) {
    using T = decltype(tag);
    const ArgEmit<T> emit{values.defined() ? values.data<T>() : nullptr, indices.data<int64_t>()};
    if (is_max) reduce_rows_with(ArgReducer<T, true>{}, x.data<T>(), outer, inner, emit);
    else reduce_rows_with(ArgReducer<T, false>{}, x.data<T>(), outer, inner, emit);
  });
}

namespace {
// Validates every index before anything is written, so a bad index leaves no partial output.
void check_indices(const int64_t* idx, int64_t count, int64_t n, const char* op) {
  for (int64_t k = 0; k < count; ++k)
    CVG_CHECK(idx[k] >= 0 && idx[k] < n, op, ": index ", idx[k], " is out of range for a dim of size ", n);
}
}  // namespace

void index_get_cpu(const Tensor& x, const Tensor& index, int64_t outer, int64_t n, int64_t inner,
                   const Tensor& out, const char* op) {
  const int64_t* idx = index.data<int64_t>();
  check_indices(idx, outer * inner, n, op);
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    parallel_for(outer * inner, 32768, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t o = k / inner, i = k % inner;
        po[k] = px[(o * n + idx[k]) * inner + i];
      }
    });
  });
}

void index_put_cpu(const Tensor& src, const Tensor& index, int64_t outer, int64_t n,
                   int64_t inner, const Tensor& out, const char* op) {
  const int64_t* idx = index.data<int64_t>();
  check_indices(idx, outer * inner, n, op);
  dispatch_floating(src.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* ps = src.data<T>();
    T* po = out.data<T>();
    // Each (o, i) owns its own slice of out, so the writes never collide.
    parallel_for(outer * inner, 32768, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t o = k / inner, i = k % inner;
        po[(o * n + idx[k]) * inner + i] = ps[k];
      }
    });
  });
}

}  // namespace cvg
