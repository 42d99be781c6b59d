// CUDA kernels of the normalisation ops (see kernels/norm.h and kernels/norm_math.h).
//
// One block per group (a batch_norm channel, an instance_norm plane, a layer_norm row; the
// grid strides over groups). Forward: the block sums the group's elements (mean), then the
// squared deviations (two-pass variance, in the input type), then writes y. Backward: the block
// sums dy and dy * (x - mean) (or gy = dy * w[d] for layer_norm) and writes dx with the closed
// form of norm_math.h. The block reduction is a fixed tree (warp shuffles, then one warp over
// the per-warp partials), so results are deterministic and need no atomics.
//
// Few large groups (a batch_norm over 20 channels, a layer_norm over 16 rows of 78,400 elements)
// leave most SMs idle with one block per group: the H100 run measured layer_norm at 0.9 % of the
// copy bandwidth. Those take the split path instead (norm_chunks() >= 2): each group is cut into
// chunks, one block per (chunk, group) writes partial results, one thread per group combines a
// group's partials in chunk order (so the result stays deterministic), and the elementwise pass
// runs over the whole tensor with one thread per element. Forward partials are each chunk's
// mean and squared deviations (two passes over the chunk, the second from L2), merged with
// norm_merge (norm_math.h): one DRAM read of x and 3 launches for the statistics and y (a
// partial sum of x, then one of squared deviations, took 5). Backward partials are the sums of
// gy and gy * (x - mean). Eval mode (statistics given) needs no reduction and always takes the
// elementwise pass.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/cuda_launch.cuh"
#include "core/fast_div.h"
#include "kernels/norm.h"

namespace cvg {

namespace {

constexpr int kNormThreads = 256;

// Sums v over the block; every thread gets the total. Must be called by all threads.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T part[32];
  constexpr unsigned kFull = 0xffffffffu;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < warps ? part[lane] : T(0);
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  __syncthreads();  // part is reused by the next call
  return v;
}

// Group and position in the group (its d) of element e of the contiguous [A, B, D] tensor.
struct NormElem {
  int64_t g, d;
};

// The geometry with dividers by D and B (core/fast_div.h): every pass turns a flat index into
// (row, d), and a row into its channel, per element, and a 64-bit division is a ~70-instruction
// routine on a GPU, enough to make these memory-bound passes compute-bound.
struct NormIndex {
  NormGeom geom;
  FastDiv fd, fb;  // by D and by B
  explicit NormIndex(const NormGeom& g)
      : geom(g), fd(FastDiv::for_size(g.D)), fb(FastDiv::for_size(g.B)) {}
  // Storage offset of the j-th element (j < count) of group g.
  __device__ __forceinline__ int64_t group_elem(int64_t g, int64_t j) const {
    const int64_t r = fd.div(j);
    return geom.row_offset(g, r) + (j - r * geom.D);
  }
  __device__ __forceinline__ int64_t d_of(int64_t j) const { return fd.mod(j); }
  // Channel of group g (NormGeom::channel without its division).
  __device__ __forceinline__ int64_t channel(int64_t g) const {
    return geom.reduce_outer ? g : fb.mod(g);
  }
  __device__ __forceinline__ NormElem elem(int64_t e) const {
    const int64_t row = fd.div(e);  // row = a * B + b
    return {geom.reduce_outer ? fb.mod(row) : row, e - row * geom.D};
  }
};

template <typename T>
__global__ void norm_forward_kernel(NormIndex ix, const T* __restrict__ x, const T* w,
                                    const T* b, T eps, bool compute_stats, T* mean, T* invstd,
                                    T* var, T* __restrict__ y) {
  const NormGeom& geom = ix.geom;
  const int64_t n = geom.count();
  for (int64_t g = blockIdx.x; g < geom.groups(); g += gridDim.x) {
    T m, is;
    if (compute_stats) {
      T s = 0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += x[ix.group_elem(g, j)];
      m = block_sum(s) / static_cast<T>(n);
      T sq = 0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const T d = x[ix.group_elem(g, j)] - m;
        sq += d * d;
      }
      const T v = block_sum(sq) / static_cast<T>(n);
      is = norm_invstd(v, eps);
      if (threadIdx.x == 0) {
        mean[g] = m;
        invstd[g] = is;
        if (var) var[g] = v;
      }
    } else {
      m = mean[g];
      is = invstd[g];
    }
    const int64_t c = ix.channel(g);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const int64_t off = ix.group_elem(g, j);
      const int64_t k = geom.weight_on_d ? ix.d_of(j) : c;
      const NormCoef<T> f = norm_forward_coef(m, is, w ? w[k] : T(1), b ? b[k] : T(0));
      y[off] = f.a * x[off] + f.shift;
    }
  }
}

template <typename T>
__global__ void norm_backward_kernel(NormIndex ix, const T* __restrict__ dy,
                                     const T* __restrict__ x, const T* mean, const T* invstd,
                                     const T* w, T* dx, T* sum_dy, T* sum_dy_xhat) {
  const NormGeom& geom = ix.geom;
  const int64_t n = geom.count();
  for (int64_t g = blockIdx.x; g < geom.groups(); g += gridDim.x) {
    const T m = mean[g], is = invstd[g];
    // With a per-channel weight the sums are of dy and the weight is applied afterwards (so
    // sum_dy / sum_dy_xhat stay weight-free for dw, db); with a per-d weight, of gy = dy * w.
    const bool wd = geom.weight_on_d && w;
    T s1 = 0, s2 = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const int64_t off = ix.group_elem(g, j);
      const T gy = wd ? dy[off] * w[ix.d_of(j)] : dy[off];
      s1 += gy;
      s2 += gy * (x[off] - m);
    }
    s1 = block_sum(s1);
    s2 = block_sum(s2) * is;  // sum of gy * xhat
    if (threadIdx.x == 0 && !geom.weight_on_d) {
      if (sum_dy) sum_dy[g] = s1;
      if (sum_dy_xhat) sum_dy_xhat[g] = s2;
    }
    if (!dx) continue;
    const T wc = (!geom.weight_on_d && w) ? w[ix.channel(g)] : T(1);
    const NormBackwardCoef<T> k =
        norm_backward_coef(m, is, wc * s1 / static_cast<T>(n), wc * s2 / static_cast<T>(n));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const int64_t off = ix.group_elem(g, j);
      const T gy = wd ? dy[off] * w[ix.d_of(j)] : dy[off] * wc;
      dx[off] = k.ka * gy + k.kb * x[off] + k.kc;
    }
  }
}

// layer_norm's weight / bias gradients: one thread per column d, walking the rows in order
// (neighbouring threads read neighbouring columns, so each row step is coalesced).
template <typename T>
__global__ void norm_affine_grad_kernel(int64_t A, int64_t D, const T* __restrict__ dy,
                                        const T* __restrict__ x, const T* mean, const T* invstd,
                                        T* dw, T* db) {
  CVG_GRID_STRIDE(d, D) {
    T sw = 0, sb = 0;
    for (int64_t a = 0; a < A; ++a) {
      const T g = dy[a * D + d];
      sw += g * ((x[a * D + d] - mean[a]) * invstd[a]);
      sb += g;
    }
    if (dw) dw[d] = sw;
    if (db) db[d] = sb;
  }
}

// ---- split path: partial sums per (chunk, group), then elementwise passes --------------------

// Elements per chunk of the split path: each block of kNormThreads sums at least this many.
constexpr int64_t kChunkElems = 4096;
// Enough blocks to fill a large GPU a few times over.
constexpr int64_t kSplitTargetBlocks = 2048;

// Elements [j0, j1) of a group: chunk c of `chunks` chunks of chunk_len (the last may be short).
__device__ __forceinline__ int64_t chunk_end(int64_t c, int64_t chunk_len, int64_t n) {
  const int64_t j1 = (c + 1) * chunk_len;
  return j1 < n ? j1 : n;
}

// moments[(g * chunks + c) * 2 + {0, 1}] = the mean of chunk c of group g and the sum of its
// squared deviations from that mean: two passes over the chunk (a few thousand elements, so the
// second reads it from L2, not DRAM), merged per group by norm_stats_kernel.
template <typename T>
__global__ void norm_moments_kernel(NormIndex ix, int64_t chunks, int64_t chunk_len,
                                    const T* __restrict__ x, T* moments) {
  const int64_t g = blockIdx.y, c = blockIdx.x;
  const int64_t j0 = c * chunk_len, j1 = chunk_end(c, chunk_len, ix.geom.count());
  T s = 0;
  for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) s += x[ix.group_elem(g, j)];
  s = block_sum(s);
  const T m = j1 > j0 ? s / static_cast<T>(j1 - j0) : T(0);
  T q = 0;
  for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
    const T d = x[ix.group_elem(g, j)] - m;
    q += d * d;
  }
  q = block_sum(q);
  if (threadIdx.x == 0) {
    moments[(g * chunks + c) * 2] = m;
    moments[(g * chunks + c) * 2 + 1] = q;
  }
}

// One thread per group: its chunks' moments merged in chunk order (norm_merge) in double (in
// float, up to 2048 small updates of a mean near 1000 drift by 1e-5 of it: 2.5 % of a std of
// 0.6), then the mean, the biased variance and invstd.
template <typename T>
__global__ void norm_stats_kernel(NormGeom geom, int64_t chunks, int64_t chunk_len,
                                  const T* moments, T eps, T* mean, T* invstd, T* var) {
  const int64_t n = geom.count();
  CVG_GRID_STRIDE(g, geom.groups()) {
    NormMoments<double> acc{0, 0, 0};
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t j0 = c * chunk_len, j1 = chunk_end(c, chunk_len, n);
      const T* mc = moments + (g * chunks + c) * 2;
      acc = norm_merge(acc, NormMoments<double>{static_cast<double>(j1 > j0 ? j1 - j0 : 0),
                                                static_cast<double>(mc[0]),
                                                static_cast<double>(mc[1])});
    }
    const T v = static_cast<T>(acc.m2 / static_cast<double>(n));
    mean[g] = static_cast<T>(acc.mean);
    invstd[g] = norm_invstd(v, eps);
    if (var) var[g] = v;
  }
}

// Backward: partial[g * chunks + c] and partial2[...] = the sums over chunk c of group g of
// gy = dy (* w[d] for layer_norm) and of gy * (x - mean[g]).
template <typename T>
__global__ void norm_backward_partial_kernel(NormIndex ix, int64_t chunks, int64_t chunk_len,
                                             const T* x, const T* mean, const T* dy, const T* w,
                                             T* partial, T* partial2) {
  const NormGeom& geom = ix.geom;
  const int64_t g = blockIdx.y, c = blockIdx.x;
  const int64_t j0 = c * chunk_len, j1 = chunk_end(c, chunk_len, geom.count());
  const bool wd = geom.weight_on_d && w;
  const T m = mean[g];
  T s1 = 0, s2 = 0;
  for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
    const int64_t off = ix.group_elem(g, j);
    const T gy = wd ? dy[off] * w[ix.d_of(j)] : dy[off];
    s1 += gy;
    s2 += gy * (x[off] - m);
  }
  s1 = block_sum(s1);
  s2 = block_sum(s2);
  if (threadIdx.x == 0) {
    partial[g * chunks + c] = s1;
    partial2[g * chunks + c] = s2;
  }
}

// The sum of group g's partials, in chunk order.
template <typename T>
__device__ T sum_partials(const T* partial, int64_t g, int64_t chunks) {
  T s = 0;
  for (int64_t c = 0; c < chunks; ++c) s += partial[g * chunks + c];
  return s;
}

// One thread per channel: batch_norm's running statistics (one launch, not a chain of ops).
template <typename T>
__global__ void norm_running_update_kernel(int64_t c, T* rm, T* rv, const T* mean, const T* var,
                                           T keep, T m, T m_unbiased) {
  CVG_GRID_STRIDE(i, c) { norm_running_update(rm[i], rv[i], mean[i], var[i], keep, m, m_unbiased); }
}

// y = a * x + shift per element (norm_forward_coef), the statistics already known.
template <typename T>
__global__ void norm_apply_kernel(NormIndex ix, int64_t numel, const T* __restrict__ x,
                                  const T* w, const T* b, const T* mean, const T* invstd,
                                  T* __restrict__ y) {
  const NormGeom& geom = ix.geom;
  CVG_GRID_STRIDE(e, numel) {
    const NormElem el = ix.elem(e);
    const int64_t k = geom.weight_on_d ? el.d : ix.channel(el.g);
    const NormCoef<T> f = norm_forward_coef(mean[el.g], invstd[el.g], w ? w[k] : T(1), b ? b[k] : T(0));
    y[e] = f.a * x[e] + f.shift;
  }
}

// One thread per group: the backward sums from their partials (stored for the weight / bias
// gradients as the per-group kernel does) and the coefficients of dx = ka * gy + kb * x + kc
// with the channel weight wc, into coef[g * 4 + {0, 1, 2, 3}] = ka, kb, kc, wc.
template <typename T>
__global__ void norm_backward_coef_kernel(NormGeom geom, int64_t chunks, const T* partial,
                                          const T* partial2, const T* mean, const T* invstd,
                                          const T* w, T* sum_dy, T* sum_dy_xhat, T* coef) {
  CVG_GRID_STRIDE(g, geom.groups()) {
    const T m = mean[g], is = invstd[g], n = static_cast<T>(geom.count());
    const T s1 = sum_partials(partial, g, chunks);
    const T s2 = sum_partials(partial2, g, chunks) * is;  // sum of gy * xhat
    if (!geom.weight_on_d) {
      if (sum_dy) sum_dy[g] = s1;
      if (sum_dy_xhat) sum_dy_xhat[g] = s2;
    }
    const T wc = (!geom.weight_on_d && w) ? w[geom.channel(g)] : T(1);
    const NormBackwardCoef<T> k = norm_backward_coef(m, is, wc * s1 / n, wc * s2 / n);
    coef[g * 4 + 0] = k.ka;
    coef[g * 4 + 1] = k.kb;
    coef[g * 4 + 2] = k.kc;
    coef[g * 4 + 3] = wc;
  }
}

template <typename T>
__global__ void norm_backward_apply_kernel(NormIndex ix, int64_t numel, const T* __restrict__ dy,
                                           const T* __restrict__ x, const T* w, const T* coef,
                                           T* __restrict__ dx) {
  const NormGeom& geom = ix.geom;
  const bool wd = geom.weight_on_d && w;
  CVG_GRID_STRIDE(e, numel) {
    const NormElem el = ix.elem(e);
    const T* k = coef + el.g * 4;
    const T gy = wd ? dy[e] * w[el.d] : dy[e] * k[3];
    dx[e] = k[0] * gy + k[1] * x[e] + k[2];
  }
}

// Chunks per group for the split path; 1 means one block per group (the kernels above).
int64_t norm_chunks(const NormGeom& geom) {
  const int64_t groups = geom.groups(), n = geom.count();
  if (groups == 0 || groups > 65535) return 1;
  const int64_t by_size = (n + kChunkElems - 1) / kChunkElems;
  const int64_t by_blocks = (kSplitTargetBlocks + groups - 1) / groups;
  return std::max<int64_t>(1, std::min(by_size, by_blocks));
}

template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

int norm_grid(const NormGeom& geom) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(geom.groups(), 65535)));
}

}  // namespace

void norm_forward_cuda(const Tensor& x, const NormGeom& geom, const Tensor& weight,
                       const Tensor& bias, double eps, bool compute_stats, const Tensor& mean,
                       const Tensor& invstd, const Tensor& var, const Tensor& y) {
  if (geom.groups() == 0) return;
  const char* op = "norm forward (batch_norm / instance_norm / layer_norm)";
  const int64_t chunks = compute_stats ? norm_chunks(geom) : 1;
  const NormIndex ix(geom);
  dispatch_floating(x.dtype(), "norm_forward_cuda", [&](auto tag) {
    using T = decltype(tag);
    const T* w = ptr_or_null<T>(weight);
    const T* b = ptr_or_null<T>(bias);
    if (compute_stats && chunks == 1) {
      norm_forward_kernel<T><<<norm_grid(geom), kNormThreads>>>(
          ix, x.data<T>(), w, b, static_cast<T>(eps), true, mean.data<T>(), invstd.data<T>(),
          ptr_or_null<T>(var), y.data<T>());
      CVG_CUDA_CHECK_LAUNCH(op);
      return;
    }
    if (compute_stats) {
      const int64_t len = (geom.count() + chunks - 1) / chunks;
      const Tensor moments = Tensor::empty({geom.groups(), chunks, 2}, x.options());
      const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(geom.groups()));
      norm_moments_kernel<T><<<grid, kNormThreads>>>(ix, chunks, len, x.data<T>(),
                                                      moments.data<T>());
      CVG_CUDA_CHECK_LAUNCH(op);
      norm_stats_kernel<T><<<grid_blocks(geom.groups()), kBlockThreads>>>(
          geom, chunks, len, moments.data<T>(), static_cast<T>(eps), mean.data<T>(),
          invstd.data<T>(), ptr_or_null<T>(var));
      CVG_CUDA_CHECK_LAUNCH(op);
    }
    const int64_t numel = x.numel();
    norm_apply_kernel<T><<<grid_blocks(numel), kBlockThreads>>>(
        ix, numel, x.data<T>(), w, b, mean.data<T>(), invstd.data<T>(), y.data<T>());
    CVG_CUDA_CHECK_LAUNCH(op);
  });
}

void norm_running_update_cuda(const Tensor& running_mean, const Tensor& running_var,
                              const Tensor& mean, const Tensor& var, double momentum, int64_t n) {
  const int64_t c = mean.numel();
  if (c == 0) return;
  dispatch_floating(mean.dtype(), "norm_running_update_cuda", [&](auto tag) {
    using T = decltype(tag);
    const T keep = static_cast<T>(1.0 - momentum), mt = static_cast<T>(momentum);
    const T mu = static_cast<T>(momentum * static_cast<double>(n) / static_cast<double>(n - 1));
    norm_running_update_kernel<T><<<grid_blocks(c), kBlockThreads>>>(
        c, running_mean.data<T>(), running_var.data<T>(), mean.data<T>(), var.data<T>(), keep,
        mt, mu);
  });
  CVG_CUDA_CHECK_LAUNCH("batch_norm (running statistics)");
}

void norm_backward_cuda(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                        const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                        const Tensor& dx, const Tensor& sum_dy, const Tensor& sum_dy_xhat) {
  if (geom.groups() == 0) return;
  const char* op = "norm backward (batch_norm / instance_norm / layer_norm)";
  const int64_t chunks = norm_chunks(geom);
  const NormIndex ix(geom);
  dispatch_floating(x.dtype(), "norm_backward_cuda", [&](auto tag) {
    using T = decltype(tag);
    const T* w = ptr_or_null<T>(weight);
    if (chunks == 1) {
      norm_backward_kernel<T><<<norm_grid(geom), kNormThreads>>>(
          ix, dy.data<T>(), x.data<T>(), mean.data<T>(), invstd.data<T>(), w,
          ptr_or_null<T>(dx), ptr_or_null<T>(sum_dy), ptr_or_null<T>(sum_dy_xhat));
      CVG_CUDA_CHECK_LAUNCH(op);
      return;
    }
    const int64_t len = (geom.count() + chunks - 1) / chunks;
    const Tensor partial = Tensor::empty({2, geom.groups(), chunks}, x.options());
    const Tensor coef = Tensor::empty({geom.groups(), 4}, x.options());
    T* p1 = partial.data<T>();
    T* p2 = p1 + geom.groups() * chunks;
    const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(geom.groups()));
    norm_backward_partial_kernel<T><<<grid, kNormThreads>>>(ix, chunks, len, x.data<T>(),
                                                             mean.data<T>(), dy.data<T>(), w, p1,
                                                             p2);
    CVG_CUDA_CHECK_LAUNCH(op);
    norm_backward_coef_kernel<T><<<grid_blocks(geom.groups()), kBlockThreads>>>(
        geom, chunks, p1, p2, mean.data<T>(), invstd.data<T>(), w, ptr_or_null<T>(sum_dy),
        ptr_or_null<T>(sum_dy_xhat), coef.data<T>());
    CVG_CUDA_CHECK_LAUNCH(op);
    if (!dx.defined()) return;
    const int64_t numel = x.numel();
    norm_backward_apply_kernel<T><<<grid_blocks(numel), kBlockThreads>>>(
        ix, numel, dy.data<T>(), x.data<T>(), w, coef.data<T>(), dx.data<T>());
    CVG_CUDA_CHECK_LAUNCH(op);
  });
}

void norm_affine_grad_cuda(const Tensor& dy, const Tensor& x, const NormGeom& geom,
                           const Tensor& mean, const Tensor& invstd, const Tensor& dw,
                           const Tensor& db) {
  if (geom.D == 0) return;
  dispatch_floating(x.dtype(), "norm_affine_grad_cuda", [&](auto tag) {
    using T = decltype(tag);
    norm_affine_grad_kernel<T><<<grid_blocks(geom.D), kBlockThreads>>>(
        geom.A, geom.D, dy.data<T>(), x.data<T>(), mean.data<T>(), invstd.data<T>(),
        ptr_or_null<T>(dw), ptr_or_null<T>(db));
  });
  CVG_CUDA_CHECK_LAUNCH("layer_norm backward (weight / bias)");
}

}  // namespace cvg
