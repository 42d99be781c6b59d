// CUDA kernels of the Deep Matching layers (conventions in kernels/deepmatch.h). One kernel
// template, instantiated per functor of kernels/deepmatch_*_math.h: a grid-stride loop with one
// thread per element written, calling the same per-element code as the CPU loops, so the two
// devices compute the same sums in the same order. Flat indices are decoded with FastDiv
// (core/fast_div.h), never with a 64-bit division. All backward passes are gathers: one writer
// per element, no atomics, deterministic.
//   corr_tiled        the forward: one block per (n, target row, 8 reference columns), the
//                     target row and the descriptors staged in shared memory
//                     (deepmatch_correlation_math.h).
//   corr_forward      one thread per score, a d-long dot product (strided over channels): the
//                     tiled forward's fallback when its scratch exceeds shared memory.
//   corr_grad_ref_tiled  d ref: one block per (16 window rows, 8 reference points), the target
//                     rows and the gradients staged in shared memory
//                     (deepmatch_correlation_math.h).
//   corr_grad_ref     one block per reference point (not the functor: see below): the tiled
//                     kernel's fallback when its scratch exceeds shared memory.
//   corr_grad_target_tiled  d target: one block per (target row, 256 / ceil(d / 16) columns),
//                     16 channels per thread, the descriptors staged per reference row.
//   corr_grad_target  one thread per target pixel and 8 channels, over the <= ceil(K/stride)^2
//                     references whose window holds it: the tiled kernel's fallback.
//   pool_*, unpool_*  one thread per fine or coarse score, <= 9 or <= 4 candidates.
//   *_cells           one thread per 2 x 2 cell of fine scores and the <= 4 windows that can
//                     name them (unpool_grads_cells: both of dm_unpool's gradients at once).
//   agg_*, disagg_*   one thread per score, 4 corners.
//   power_forward     elementwise exp(nu ln A), 4 elements per thread (loads first);
//                     power_backward 16 per thread, d nu's terms summed as hinge_loss's.
//   *_span            one thread per kDmSpan scores of a point (version 3 of the aggregation).
//   hinge_loss        one block per point, a thread per slice of K^2 / 256 scores: the slice's
//                     terms summed in registers, the slices' sums in a fixed tree in shared
//                     memory; the last block to finish sums the points' and writes the loss
//                     (one kernel for the whole forward). hinge_grad: one thread per slice,
//                     one gradient per score.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "core/cuda_launch.cuh"
#include "kernels/deepmatch.h"

namespace cvg {

namespace {

// The loop counter is unsigned and as wide as the functor's index I: with I = int32_t,
// n < 2^31 and the grid stride is below 2^27 (core/cuda_launch.cuh), so l + stride never wraps
// a uint32_t; with I = int64_t it is the usual 64-bit loop.
template <typename I, typename F>
__device__ __forceinline__ void dm_items(const F& f, I n) {
  using U = std::make_unsigned_t<I>;
  const U stride = static_cast<U>(gridDim.x) * blockDim.x;
  for (U l = static_cast<U>(blockIdx.x) * blockDim.x + threadIdx.x; l < static_cast<U>(n);
       l += stride)
    f(static_cast<I>(l));
}

template <typename I, typename F>
__global__ void dm_kernel(F f, I n) {
  dm_items(f, n);
}

// Blocks each SM must hold, for a functor whose kernel should give up registers for occupancy
// (and can without spilling: ptxas -v); 0 for the others. A __launch_bounds__ on every kernel
// would not do: with a minimum of 1 block ptxas gave many of them more registers than without
// any bound (the correlation's per-score kernel 32 -> 56, the hinge gradient 32 -> 40).
template <typename F>
constexpr int kDmMinBlocks = 0;
template <>
constexpr int kDmMinBlocks<DmPoolForwardPairs<float, int32_t>> = 8;  // 40 registers unbounded

template <int MinBlocks, typename I, typename F>
__global__ void __launch_bounds__(kBlockThreads, MinBlocks) dm_kernel_bounded(F f, I n) {
  dm_items(f, n);
}

// Runners take the functor's index type I explicitly (as deepmatch_cpu.cpp's): the overloads
// below, more specialised, take the kernels that are not one item per thread.
template <typename I, typename F>
void run_cuda(const F& f, int64_t n, const char* op) {
  if (n <= 0) return;
  if constexpr (kDmMinBlocks<F> > 0)
    dm_kernel_bounded<kDmMinBlocks<F>, I, F>
        <<<grid_blocks(n), kBlockThreads>>>(f, static_cast<I>(n));
  else
    dm_kernel<I, F><<<grid_blocks(n), kBlockThreads>>>(f, static_cast<I>(n));
  CVG_CUDA_CHECK_LAUNCH(op);
}

// d ref of the correlation, v2. The functor (v1, the CPU's loop) gives each thread one output
// (n, c, i, j) and a K^2 loop over grad's row of point (i, j): neighbouring threads are
// neighbouring points, K^2 elements apart in grad, so every load was its own memory transaction
// (7.5 ms for 1024 points, K = 161, d = 64 on an H100). Here one block owns one reference point:
// its threads walk the point's K^2 offsets together (grad's row read coalesced, the target window
// read along x), each keeping kChunk channel sums in registers, and the block adds the 256
// partial sums up in a fixed tree (deterministic; the order differs from the CPU's loop, so
// parity is to rounding, not bitwise).
template <typename T, typename I>
__global__ void corr_grad_ref_kernel(DmCorrGradRef<T, I> f) {
  __shared__ T part[kDmCorrChunk][kBlockThreads];
  const DmCorrGeom<I>& g = f.g;
  const I point = blockIdx.x;  // (n H + i) W + j
  const auto [n, i, j] = dm_grid(point, g.fh, g.fw);
  const I y0 = g.stride * i + g.offset - g.r, x0 = g.stride * j + g.offset - g.r;
  const I kk = g.k * g.k, plane = g.ht * g.wt;
  const T* grow = f.grad + point * kk;
  const int tid = threadIdx.x;
  for (I c0 = 0; c0 < g.d; c0 += kDmCorrChunk) {
    const int chunk = static_cast<int>(g.d - c0 < kDmCorrChunk ? g.d - c0 : kDmCorrChunk);
    const T* tc = f.tgt + (n * g.d + c0) * plane;
    DmChannelSums<T> acc(chunk);
    for (I q = tid; q < kk; q += kBlockThreads) {
      const I qy = g.fk.div(q), y = y0 + qy, x = x0 + q - qy * g.k;
      if (dm_in(y, g.ht) && dm_in(x, g.wt)) acc.add(grow[q], tc + y * g.wt + x, plane);
    }
#pragma unroll
    for (int cc = 0; cc < kDmCorrChunk; ++cc) part[cc][tid] = acc.s[cc];
    __syncthreads();
    for (int half = kBlockThreads / 2; half > 0; half /= 2) {
      if (tid < half) {
#pragma unroll
        for (int cc = 0; cc < kDmCorrChunk; ++cc) part[cc][tid] += part[cc][tid + half];
      }
      __syncthreads();
    }
    if (tid < chunk) f.out[((n * g.d + c0 + tid) * g.h + i) * g.w + j] = part[tid][0];
    __syncthreads();  // part is rewritten by the next chunk
  }
}

// More specialised than the template above, so overload resolution picks it for corr_grad_ref.
// n (the number of outputs, N d H W) is not needed: the grid is one block per point.
template <typename I, typename T>
void run_cuda(const DmCorrGradRef<T, I>& f, int64_t n, const char* op) {
  const int64_t points = int64_t{f.g.n} * f.g.h * f.g.w;
  if (n <= 0 || points <= 0) return;
  CVG_CHECK(points <= int64_t{0x7fffffff}, op, ": ", points, " reference points exceed a grid");
  corr_grad_ref_kernel<T, I><<<static_cast<unsigned>(points), kBlockThreads>>>(f);
  CVG_CUDA_CHECK_LAUNCH(op);
}

// ---- sums over the grid (DmGridSum) ----
// Blocks count themselves out on dm_blocks_done; the last one, which sees every block's sum
// (each block's __threadfence orders its store before its count, and the fence after the
// count orders the last block's reads after it), adds them up and sets the
// counter back to 0 for the next launch (kernels run one after another on the one stream
// cvgrad uses; an aborted launch leaves the context unusable anyway). The trees are
// dm_tree_sum's: the CPU's bits (deepmatch_cpu.cpp).
__device__ unsigned int dm_blocks_done = 0;

// v[0] = the block's kDmGridBlock values added in dm_tree_sum's order (thread t holds v[t];
// thread 0 may read v[0] after the call without another barrier).
template <typename T>
__device__ void block_tree(T* v, int t) {
  for (int h = kDmGridBlock / 2; h > 0; h /= 2) {
    __syncthreads();
    if (t < h) v[t] += v[t + h];
  }
}

// Every thread of every block calls this after block_tree(v): thread 0 stores the block's sum,
// and the last block writes s's total (v is its scratch).
template <typename T, typename I>
__device__ void grid_sum_finish(const DmGridSum<T, I>& s, T* v, int t) {
  __shared__ bool last;
  if (t == 0) {
    s.block_sum[blockIdx.x] = v[0];
    __threadfence();
    last = atomicAdd(&dm_blocks_done, 1u) == gridDim.x - 1;
    __threadfence();  // acquire side: the other blocks' sums are read after their counts
  }
  __syncthreads();
  if (!last) return;
  v[t] = s.part(t, [](const T* p) { return __ldcg(p); });
  block_tree(v, t);
  if (t == 0) {
    *s.total = s.finish(v[0]);
    dm_blocks_done = 0;
  }
}

// The hinge loss's forward (DmHingeLoss): block b is point b, thread t its slice t; the point's
// sum of terms and count of active terms in trees, the loss by grid_sum_finish. One kernel
// instead of a kernel and four reductions.
// float with 32-bit indices at most 32 registers (8 blocks of 256 threads per SM): at the
// bench's 1024 points an H100's 132 SMs then run every block in one wave, where 40 registers
// (6 blocks per SM) would leave a second wave of a quarter of them. The other paths (double,
// 64-bit indices) would spill under that bound, so they go without it.
template <typename T, typename I>
constexpr int kDmHingeMinBlocks = std::is_same_v<T, float> && sizeof(I) == 4 ? 8 : 1;

template <typename T, typename I>
__global__ void __launch_bounds__(kDmHingeSlices, kDmHingeMinBlocks<T, I>)
    hinge_loss_kernel(DmHingeLoss<T, I> f) {
  __shared__ T sums[kDmGridBlock], counts[kDmGridBlock];
  const int t = static_cast<int>(threadIdx.x);
  const I point = static_cast<I>(blockIdx.x);
  const DmHingeSums<T> s = f.slice(point, static_cast<I>(t));
  sums[t] = s.sum;
  counts[t] = s.active;
  block_tree(counts, t);
  if (t == 0) f.active[point] = counts[0];
  block_tree(sums, t);
  grid_sum_finish(f.loss, sums, t);
}

// More specialised than the generic runner: n is the number of points, one block each.
template <typename I, typename T>
void run_cuda(const DmHingeLoss<T, I>& f, int64_t points, const char* op) {
  if (points <= 0) return;
  CVG_CHECK(points <= int64_t{0x7fffffff}, op, ": ", points, " reference points exceed a grid");
  hinge_loss_kernel<T, I><<<static_cast<unsigned>(points), kDmGridBlock>>>(f);
  CVG_CUDA_CHECK_LAUNCH(op);
}

// dm_power's one-pass backward (DmPowerBackward): thread t of block b is item b kDmGridBlock + t;
// the items' terms of d nu meet by grid_sum_finish (when d nu is wanted: the same for the grid).
template <typename T, typename I>
__global__ void power_backward_kernel(DmPowerBackward<T, I> f) {
  __shared__ T sums[kDmGridBlock];
  const int t = static_cast<int>(threadIdx.x);
  const I l = static_cast<I>(blockIdx.x) * kDmGridBlock + t;
  const T v = l < f.items ? f.item(l) : T(0);
  if (!f.dnu.total) return;
  sums[t] = v;
  block_tree(sums, t);
  grid_sum_finish(f.dnu, sums, t);
}

template <typename I, typename T>
void run_cuda(const DmPowerBackward<T, I>& f, int64_t items, const char* op) {
  if (items <= 0) return;
  const int64_t blocks = (items + kDmGridBlock - 1) / kDmGridBlock;
  CVG_CHECK(blocks <= int64_t{0x7fffffff}, op, ": ", items, " work items exceed a grid");
  power_backward_kernel<T, I><<<static_cast<unsigned>(blocks), kDmGridBlock>>>(f);
  CVG_CUDA_CHECK_LAUNCH(op);
}

// A kernel that takes more than 48 KB of dynamic shared memory must opt in, per kernel: once per
// process, to the most this process will ask for (dm_tile_smem_limit).
template <auto Kernel>
void opt_in_shared(const char* op) {
  static const bool done = [op] {
    CVG_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(dm_tile_smem_limit(op))),
                   op);
    return true;
  }();
  (void)done;
}

// The tiled correlation forward (DmCorrTiled): one CUDA block per work block, its scratch in
// dynamic shared memory; the threads load it together, then each computes items a block apart.
template <typename T, typename I>
__global__ void corr_tiled_kernel(DmCorrTiled<T, I> f) {
  extern __shared__ __align__(16) unsigned char dm_shared[];
  T* scratch = reinterpret_cast<T*>(dm_shared);
  const auto b = f.block(static_cast<I>(blockIdx.x));
  const I first = static_cast<I>(threadIdx.x), step = static_cast<I>(blockDim.x);
  for (I l = first; l < f.target_items(b); l += step) f.load_target(b, l, scratch);
  for (I l = first; l < f.ref_items(b); l += step) f.load_ref(b, l, scratch);
  __syncthreads();
  for (I l = first; l < f.compute_items(b); l += step) f.compute(b, l, scratch);
}

template <typename I, typename T>
void run_cuda(const DmCorrTiled<T, I>& f, int64_t blocks, const char* op) {
  if (blocks <= 0) return;
  const int64_t bytes = int64_t{f.t.scratch(f.g.d)} * static_cast<int64_t>(sizeof(T));
  if (bytes > dm_tile_smem_limit(op) || blocks > int64_t{0x7fffffff}) {
    const DmCorrForward<T, I> per_score{f.ref, f.tgt, f.g, f.out};
    run_cuda<I>(per_score, int64_t{f.g.n} * f.g.h * f.g.w * f.g.k * f.g.k, op);
    return;
  }
  opt_in_shared<corr_tiled_kernel<T, I>>(op);
  corr_tiled_kernel<T, I><<<static_cast<unsigned>(blocks), kBlockThreads, bytes>>>(f);
  CVG_CUDA_CHECK_LAUNCH(op);
}

// The tiled gradient in the descriptors (DmCorrGradRefTiled): one CUDA block per work block;
// per window row in the map, the threads stage it together, then each adds its products; at
// the end the slices' sums meet in shared memory and the outputs are written in slice order.
template <typename T, typename I>
__global__ void corr_grad_ref_tiled_kernel(DmCorrGradRefTiled<T, I> f) {
  extern __shared__ __align__(16) unsigned char dm_shared[];
  T* scratch = reinterpret_cast<T*>(dm_shared);
  const auto b = f.block(static_cast<I>(blockIdx.x));
  const I tid = static_cast<I>(threadIdx.x), step = static_cast<I>(blockDim.x);
  const I items = f.t.row_items(f.g.d);
  typename DmCorrGradRefTiled<T, I>::Sums acc{};
  for (I ky = b.ky0; ky < b.ky1; ++ky) {
    if (!dm_in(f.row_y(b, ky), f.g.ht)) continue;  // the same for the whole block
    __syncthreads();  // the previous row's readers are done
    for (I l = tid; l < items; l += step) f.load_row(b, ky, l, scratch);
    __syncthreads();
    f.accumulate(tid, scratch, acc);
  }
  __syncthreads();
  f.stash(tid, acc, scratch);
  __syncthreads();
  for (I l = tid; l < f.out_items(); l += step) f.finish(b, l, scratch);
}

// The tiled gradient in the target (DmCorrGradTargetTiled): per reference row that sees the
// block's target row, the threads stage its descriptors together, then each adds its terms.
template <typename T, typename I>
__global__ void corr_grad_target_tiled_kernel(DmCorrGradTargetTiled<T, I> f) {
  extern __shared__ __align__(16) unsigned char dm_shared[];
  T* scratch = reinterpret_cast<T*>(dm_shared);
  const auto b = f.block(static_cast<I>(blockIdx.x));
  const I tid = static_cast<I>(threadIdx.x), step = static_cast<I>(blockDim.x);
  typename DmCorrGradTargetTiled<T, I>::Sums acc{};
  for (I il = 0; il < b.ni; ++il) {
    __syncthreads();  // the previous row's readers are done
    for (I l = tid; l < f.ref_items(); l += step) f.load_ref(b, il, l, scratch);
    __syncthreads();
    f.accumulate(b, il, tid, scratch, acc);
  }
  f.store(b, tid, acc);
}

// Launches a tiled gradient kernel. kernels/deepmatch.cpp checked that its blocks fit (and ran
// the per-site kernel otherwise), so a misfit here is a bug, reported with the sizes.
template <auto Kernel, typename F>
void launch_tiled_gradient(const F& f, int64_t blocks, int64_t scratch, int64_t groups,
                           const char* op) {
  if (blocks <= 0) return;
  using T = std::remove_const_t<std::remove_pointer_t<decltype(f.grad)>>;
  const int64_t bytes = scratch * static_cast<int64_t>(sizeof(T));
  CVG_CHECK(bytes <= dm_tile_smem_limit(op) && blocks <= int64_t{0x7fffffff} &&
                groups <= kDmGradThreads,
            op, ": tiled gradient launch out of range (", bytes, " bytes of shared memory, ",
            blocks, " blocks, ", groups, " channel groups)");
  opt_in_shared<Kernel>(op);
  Kernel<<<static_cast<unsigned>(blocks), kDmGradThreads, bytes>>>(f);
  CVG_CUDA_CHECK_LAUNCH(op);
}

template <typename I, typename T>
void run_cuda(const DmCorrGradRefTiled<T, I>& f, int64_t blocks, const char* op) {
  launch_tiled_gradient<corr_grad_ref_tiled_kernel<T, I>>(f, blocks, f.t.scratch(f.g.d), f.t.cg,
                                                          op);
}

template <typename I, typename T>
void run_cuda(const DmCorrGradTargetTiled<T, I>& f, int64_t blocks, const char* op) {
  launch_tiled_gradient<corr_grad_target_tiled_kernel<T, I>>(f, blocks, f.t.scratch(), f.t.cg,
                                                             op);
}

}  // namespace

// Half an SM's shared memory (two blocks per SM, so one block's loads overlap the other's
// arithmetic), within the device's per-block opt-in limit; 1 KB per block is the runtime's own.
// Asked once per device (every tiled launch needs it; the attributes do not change).
int64_t dm_tile_smem_limit(const char* op) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int64_t> known[kMaxDevices] = {};  // 0: not asked yet
  int dev = 0;
  CVG_CUDA_CHECK(cudaGetDevice(&dev), op);
  CVG_CHECK(dev >= 0 && dev < kMaxDevices, op, ": device index ", dev, " out of range");
  if (const int64_t v = known[dev].load(); v != 0) return v;
  int per_sm = 0, per_block = 0;
  CVG_CUDA_CHECK(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev),
                 op);
  CVG_CUDA_CHECK(
      cudaDeviceGetAttribute(&per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), op);
  const int64_t limit = std::min<int64_t>(per_block, per_sm / 2 - 1024);
  known[dev].store(limit);
  return limit;
}

#define CVG_DM_DEFINE_CUDA_ONE(name, F, T, I) \
  void dm_##name##_cuda(const F<T, I>& f, int64_t n) { run_cuda<I>(f, n, "dm_" #name); }
#define CVG_DM_DEFINE_CUDA(name, F) CVG_DM_EACH_TYPE(CVG_DM_DEFINE_CUDA_ONE, name, F)
CVG_DM_KERNELS(CVG_DM_DEFINE_CUDA)
#undef CVG_DM_DEFINE_CUDA
#undef CVG_DM_DEFINE_CUDA_ONE

}  // namespace cvg
