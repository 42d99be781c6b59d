// CUDA row reductions over contiguous [outer, inner] rows, with the reducers of
// kernels/reduce_math.h (the same combine math as the CPU loops).
//   - Long rows (inner > kWarpRowMax): one block of 256 threads per row (grid-stride over
//     rows). Each thread folds a strided slice of the row, the 32 lanes of each warp combine
//     with shuffles, and warp 0 combines the 8 warp partials the same way.
//   - Short rows: one warp per row, so that many short rows do not leave 7/8 of every block
//     idle.
//   - Long rows, too few to fill the GPU (reduce_split in kernels/reduce_math.h; a full sum is
//     one row): each row is cut into contiguous chunks, one block each (split_rows_kernel
//     writes each chunk's State to a scratch tensor), then one warp per row combines its
//     chunks' States (combine_parts_kernel). One block for a 26 M-element sum took 1.1 ms on
//     an H100, 33 % of the Deep Matching training step (bench/results, dm profile).
// Any reducer State is shuffled word by word (shfl_down_state), so sums, Welford triples,
// (max, sum) pairs and (value, index) pairs all use the same kernels. The combination order
// is fixed by the launch shape, so results are deterministic; they can differ from the CPU's
// in the last bits because the CPU accumulates sums in double and the GPU in the input type
// (parity tests use tolerances). Arg reductions are exact and agree with the CPU bit for bit,
// because their combine is a total order (first maximum, first NaN).
//
// index_get/index_put_along_dim: one thread per index; an out-of-range index raises a flag in
// device memory that the host checks after the kernel (and then throws).
#include <cuda_runtime.h>

#include <cstring>

#include "kernels/reduce.h"

namespace cvg {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kWarpRowMax = 1024;

void check_launch(const char* op) {
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(e));
}

// __shfl_down_sync moves 32-bit words; a State is moved as its words (all States are plain
// structs whose size is a multiple of 4 bytes).
template <typename S>
__device__ S shfl_down_state(const S& s, int offset) {
  static_assert(sizeof(S) % 4 == 0, "reducer state must be a whole number of 32-bit words");
  constexpr int kWords = sizeof(S) / 4;
  unsigned w[kWords];
  memcpy(w, &s, sizeof(S));
#pragma unroll
  for (int k = 0; k < kWords; ++k) w[k] = __shfl_down_sync(0xffffffffu, w[k], offset);
  S out;
  memcpy(&out, w, sizeof(S));
  return out;
}

// After this, lane 0 holds the combination of the 32 lanes' states.
template <typename R>
__device__ typename R::State warp_reduce(const R& r, typename R::State s) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) s = r.combine(s, shfl_down_state(s, offset));
  return s;
}

template <typename R, typename T>
__device__ typename R::State fold_strided(const R& r, const T* row, int64_t inner, int64_t start,
                                          int64_t stride) {
  using A = decltype(r.value(r.identity()));
  typename R::State s = r.identity();
  for (int64_t i = start; i < inner; i += stride) s = r.update(s, static_cast<A>(row[i]), i);
  return s;
}

// The combination of the block's states, valid in thread 0. Every thread must call it (it
// synchronises); `partials` holds one State per warp and may be reused after it returns.
template <typename R>
__device__ typename R::State block_reduce(const R& r, typename R::State s,
                                          typename R::State* partials) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  s = warp_reduce(r, s);
  if (lane == 0) partials[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < static_cast<int>(blockDim.x / 32) ? partials[lane] : r.identity();
    s = warp_reduce(r, s);
  }
  __syncthreads();  // partials may be rewritten once every warp has passed this point
  return s;
}

template <typename R, typename T, typename Emit>
__global__ void block_rows_kernel(R r, const T* x, int64_t outer, int64_t inner, Emit emit) {
  __shared__ typename R::State warp_partials[kThreads / 32];
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const auto s = block_reduce(
        r, fold_strided(r, x + row * inner, inner, threadIdx.x, blockDim.x), warp_partials);
    if (threadIdx.x == 0) emit(r, row, s);
  }
}

// Block b folds chunk b % parts of row b / parts (elements [part chunk, (part + 1) chunk) of
// the row, with their row positions, so arg reducers keep row indices) into partial[b].
template <typename R, typename T>
__global__ void split_rows_kernel(R r, const T* x, int64_t inner, int64_t parts, int64_t chunk,
                                  typename R::State* partial) {
  using A = decltype(r.value(r.identity()));
  __shared__ typename R::State warp_partials[kThreads / 32];
  const int64_t b = blockIdx.x, row = b / parts, begin = (b - row * parts) * chunk;
  const int64_t end = begin + chunk < inner ? begin + chunk : inner;
  const T* xr = x + row * inner;
  typename R::State s = r.identity();
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    s = r.update(s, static_cast<A>(xr[i]), i);
  s = block_reduce(r, s, warp_partials);
  if (threadIdx.x == 0) partial[b] = s;
}

// One warp per row combines the row's `parts` States: lane l folds parts l, l + 32, ... in
// order, then the lanes combine by shuffles (fixed order: deterministic).
template <typename R, typename Emit>
__global__ void combine_parts_kernel(R r, const typename R::State* partial, int64_t outer,
                                     int64_t parts, Emit emit) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
       row < outer; row += warps) {
    typename R::State s = r.identity();
    for (int64_t p = lane; p < parts; p += 32) s = r.combine(s, partial[row * parts + p]);
    s = warp_reduce(r, s);
    if (lane == 0) emit(r, row, s);
  }
}

template <typename R, typename T, typename Emit>
__global__ void warp_rows_kernel(R r, const T* x, int64_t outer, int64_t inner, Emit emit) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  // row is the same for all lanes of a warp, so the whole warp takes part in every shuffle.
  for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
       row < outer; row += warps) {
    typename R::State s = fold_strided(r, x + row * inner, inner, lane, 32);
    s = warp_reduce(r, s);
    if (lane == 0) emit(r, row, s);
  }
}

template <typename R, typename T, typename Emit>
void launch_rows(const R& r, const Tensor& like, const T* x, int64_t outer, int64_t inner,
                 const Emit& emit, const char* op) {
  if (outer == 0) return;
  const int64_t warp_blocks = (outer + kThreads / 32 - 1) / (kThreads / 32);
  const ReduceSplit split = reduce_split(outer, inner);
  if (inner <= kWarpRowMax) {
    warp_rows_kernel<<<static_cast<int>(std::min<int64_t>(warp_blocks, 65535)), kThreads>>>(
        r, x, outer, inner, emit);
  } else if (split.parts > 1) {
    // outer * parts <= max(1024 + outer, outer): the grid holds it for any outer below 2^31.
    using State = typename R::State;
    const int64_t blocks = outer * split.parts;
    CVG_CHECK(blocks <= int64_t{0x7fffffff}, op, ": ", outer, " rows of ", inner,
              " elements exceed a grid");
    const Tensor scratch = Tensor::empty({blocks * static_cast<int64_t>(sizeof(State))},
                                         like.options().with_dtype(DType::uint8));
    State* partial = reinterpret_cast<State*>(scratch.data<uint8_t>());
    split_rows_kernel<<<static_cast<unsigned>(blocks), kThreads>>>(r, x, inner, split.parts,
                                                                   split.chunk, partial);
    check_launch(op);
    combine_parts_kernel<<<static_cast<int>(std::min<int64_t>(warp_blocks, 65535)), kThreads>>>(
        r, partial, outer, split.parts, emit);
  } else {
    block_rows_kernel<<<static_cast<int>(std::min<int64_t>(outer, 65535)), kThreads>>>(
        r, x, outer, inner, emit);
  }
  check_launch(op);
}

template <typename T>
void reduce_rows_typed(ReduceKind kind, const Tensor& like, const T* x, int64_t outer,
                       int64_t inner, T* out, const ReduceParams& params) {
  const ValueEmit<T> emit{out};
  switch (kind) {
    case ReduceKind::sum:
      return launch_rows(SimpleReducer<ReduceKind::sum, T>{}, like, x, outer, inner, emit, "sum");
    case ReduceKind::max:
      return launch_rows(SimpleReducer<ReduceKind::max, T>{}, like, x, outer, inner, emit, "max");
    case ReduceKind::min:
      return launch_rows(SimpleReducer<ReduceKind::min, T>{}, like, x, outer, inner, emit, "min");
    case ReduceKind::var:
      return launch_rows(VarReducer<T>{static_cast<T>(params.ddof)}, like, x, outer, inner, emit,
                         "var");
    case ReduceKind::logsumexp:
      return launch_rows(LogSumExpReducer<T>{}, like, x, outer, inner, emit, "logsumexp");
    case ReduceKind::norm:
      return launch_rows(NormReducer<T>{static_cast<T>(params.p)}, like, x, outer, inner, emit,
                         "norm");
  }
}

// ---- one element per slice along a dim ----

template <typename T>
__global__ void index_get_kernel(const T* x, const int64_t* idx, int64_t outer, int64_t n,
                                 int64_t inner, T* out, int* bad) {
  const int64_t total = outer * inner;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = idx[k];
    if (j < 0 || j >= n) {
      *bad = 1;  // every writer stores the same value, so the race is benign
      continue;
    }
    out[k] = x[((k / inner) * n + j) * inner + k % inner];
  }
}

template <typename T>
__global__ void index_put_kernel(const T* src, const int64_t* idx, int64_t outer, int64_t n,
                                 int64_t inner, T* out, int* bad) {
  const int64_t total = outer * inner;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = idx[k];
    if (j < 0 || j >= n) {
      *bad = 1;
      continue;
    }
    out[((k / inner) * n + j) * inner + k % inner] = src[k];
  }
}

template <typename Launch>
void run_indexed(const Tensor& like, int64_t total, int64_t n, const char* op, Launch launch) {
  if (total == 0) return;
  Tensor bad = zeros({1}, like.options().with_dtype(DType::int32));
  const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 65535 * 8));
  launch(blocks, bad.data<int32_t>());
  check_launch(op);
  CVG_CHECK(bad.item<int32_t>() == 0, op, ": an index is out of range for a dim of size ", n);
}

}  // namespace

void reduce_rows_cuda(ReduceKind kind, const Tensor& x, int64_t outer, int64_t inner,
                      const Tensor& out, const ReduceParams& params) {
  dispatch_floating(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    reduce_rows_typed<T>(kind, x, x.data<T>(), outer, inner, out.data<T>(), params);
  });
}

void argreduce_rows_cuda(bool is_max, const Tensor& x, int64_t outer, int64_t inner,
                         const Tensor& values, const Tensor& indices) {
  const char* op = is_max ? "argmax" : "argmin";
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const ArgEmit<T> emit{values.defined() ? values.data<T>() : nullptr, indices.data<int64_t>()};
    if (is_max) launch_rows(ArgReducer<T, true>{}, x, x.data<T>(), outer, inner, emit, op);
    else launch_rows(ArgReducer<T, false>{}, x, x.data<T>(), outer, inner, emit, op);
  });
}

void index_get_cuda(const Tensor& x, const Tensor& index, int64_t outer, int64_t n, int64_t inner,
                    const Tensor& out, const char* op) {
  dispatch_floating(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    run_indexed(x, outer * inner, n, op, [&](int blocks, int* bad) {
      index_get_kernel<T><<<blocks, kThreads>>>(x.data<T>(), index.data<int64_t>(), outer, n,
                                                inner, out.data<T>(), bad);
    });
  });
}

void index_put_cuda(const Tensor& src, const Tensor& index, int64_t outer, int64_t n,
                    int64_t inner, const Tensor& out, const char* op) {
  dispatch_floating(src.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    run_indexed(src, outer * inner, n, op, [&](int blocks, int* bad) {
      index_put_kernel<T><<<blocks, kThreads>>>(src.data<T>(), index.data<int64_t>(), outer, n,
                                                inner, out.data<T>(), bad);
    });
  });
}

}  // namespace cvg
