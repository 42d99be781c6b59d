// CUDA kernels of the fused landmark losses (see kernels/landmark_loss.h).
//
// Equivariance: one 256-thread block per (n, k) plane (the grid strides over planes). Pass 1
// folds each thread's strided slice of both maps into online states (kernels/spatial.h's
// ArgmaxState: max, sum of exp, exp-weighted sums of the position), merged across lanes by
// shuffles and across warps through shared memory; pass 2 sums the centred spreads
// p |c - m|^2. Thread 0 writes the plane's loss to a small buffer, which one block then sums.
// The backward kernel recomputes the same statistics and writes both gradients in a third pass.
//
// Diversity: one 512-thread block per image, since a cell's winner needs all K maps. Each warp
// takes whole landmarks for their softmax statistics (max and 1 / sum of exp), stored in a
// small global scratch; then each thread takes cells, sums every landmark's probability mass
// over the cell and keeps the first largest. The backward kernel also stores the winners,
// sums each landmark's won mass (one warp per landmark, over the cells in a fixed lane order)
// and writes the gradient element by element.
//
// Every reduction has a fixed order and there are no atomics: results are deterministic.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/cuda_launch.cuh"
#include "kernels/dispatch.h"
#include "kernels/landmark_loss.h"
#include "kernels/landmark_loss_math.h"
#include "kernels/softmax_cuda.cuh"
#include "kernels/spatial.h"
#include "kernels/spatial_cuda.cuh"

namespace cvg {

namespace {

constexpr int kPlaneThreads = 256;  // equivariance: a plane of 24x24 .. 64x64 is 2-16 per thread
constexpr int kImageThreads = 512;  // diversity: few blocks (one per image), so wide ones
constexpr int kFinishThreads = 256;
constexpr unsigned kFull = 0xffffffffu;

// Butterfly sum over the 32 lanes; a + b == b + a exactly, so every lane ends with the same bits.
template <typename T>
__device__ T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  return v;
}

// Sums a and b over the block (blockDim.x a multiple of 32); every thread gets the totals.
// Must be called by all threads of the block.
template <typename T>
__device__ void block_sum2(T& a, T& b) {
  __shared__ T part_a[32], part_b[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  a = warp_sum(a);
  b = warp_sum(b);
  if (lane == 0) {
    part_a[warp] = a;
    part_b[warp] = b;
  }
  __syncthreads();
  a = warp_sum(lane < warps ? part_a[lane] : T(0));
  b = warp_sum(lane < warps ? part_b[lane] : T(0));
  __syncthreads();  // the partials are rewritten by the next call
}

// a / b for indices inside one image's K h w maps, which the launchers check fit 31 bits: a
// 32-bit division is a fraction of the instructions of a 64-bit one on the GPU, and these
// loops divide per element.
__device__ __forceinline__ int64_t div31(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint32_t>(a) / static_cast<uint32_t>(b));
}

// The launchers' check behind div31.
void check_image_fits(const char* op, int64_t K, int64_t h, int64_t w) {
  CVG_CHECK(K * h * w <= int64_t{0x7fffffff}, op, ": one image's K x h x w = ", K, " x ", h,
            " x ", w, " maps exceed 2^31 - 1 elements");
}

// Softmax statistics of one map: p = lm_prob(z, zmax, inv_sum), mean (mx, my), centred spread.
template <typename T>
struct Moments {
  T zmax, inv_sum, mx, my, var;
};

// Moments of the plane pair (a over pixel positions u = (j, i), b over the grid positions
// G = gp[idx]) of one (n, k); every thread of the block gets them.
template <typename T>
__device__ void pair_moments(const T* a, const T* b, const T* gp, int64_t h, int64_t w,
                             Moments<T>& A, Moments<T>& B) {
  const int64_t hw = h * w;
  ArgmaxState<T> sa = argmax_state_init<T>(), sb = argmax_state_init<T>();
  for (int64_t j = threadIdx.x; j < hw; j += blockDim.x) {
    const int64_t i = div31(j, w), c = j - i * w;
    argmax_state_add(sa, a[j], T(c), T(i));
    argmax_state_add(sb, b[j], gp[2 * j], gp[2 * j + 1]);
  }
  sa = argmax_block_merge(sa);
  sb = argmax_block_merge(sb);
  A = {sa.m, T(1) / sa.s, T(0), T(0), T(0)};
  B = {sb.m, T(1) / sb.s, T(0), T(0), T(0)};
  A.mx = sa.sx * A.inv_sum;
  A.my = sa.sy * A.inv_sum;
  B.mx = sb.sx * B.inv_sum;
  B.my = sb.sy * B.inv_sum;
  T va = 0, vb = 0;
  for (int64_t j = threadIdx.x; j < hw; j += blockDim.x) {
    const int64_t i = div31(j, w), c = j - i * w;
    va += lm_prob(a[j], A.zmax, A.inv_sum) * lm_sq(T(c) - A.mx, T(i) - A.my);
    vb += lm_prob(b[j], B.zmax, B.inv_sum) * lm_sq(gp[2 * j] - B.mx, gp[2 * j + 1] - B.my);
  }
  block_sum2(va, vb);
  A.var = va;
  B.var = vb;
}

template <typename T>
__global__ void equivariance_kernel(const T* __restrict__ x, const T* __restrict__ x2,
                                    const T* __restrict__ grid, T* __restrict__ plane_loss,
                                    int64_t planes, int64_t K, int64_t h, int64_t w) {
  const int64_t hw = h * w;
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    Moments<T> A, B;
    pair_moments(x + p * hw, x2 + p * hw, grid + (p / K) * hw * 2, h, w, A, B);
    if (threadIdx.x == 0)
      plane_loss[p] = lm_equivariance_plane(A.var, B.var, A.mx, A.my, B.mx, B.my);
  }
}

template <typename T>
__global__ void equivariance_backward_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                             const T* __restrict__ x2, const T* __restrict__ grid,
                                             T* __restrict__ dx, int64_t planes, int64_t K,
                                             int64_t h, int64_t w) {
  const int64_t hw = h * w;
  const T scale = g[0] / T(planes);
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const T *a = x + p * hw, *b = x2 + p * hw, *gp = grid + (p / K) * hw * 2;
    Moments<T> A, B;
    pair_moments(a, b, gp, h, w, A, B);
    T* d = dx + p * hw;              // [0]: w.r.t. logits
    T* d2 = dx + (planes + p) * hw;  // [1]: w.r.t. logits2
    for (int64_t j = threadIdx.x; j < hw; j += blockDim.x) {
      const int64_t i = div31(j, w), c = j - i * w;
      d[j] = scale * lm_equivariance_grad(lm_prob(a[j], A.zmax, A.inv_sum), T(c) - A.mx,
                                          T(i) - A.my, A.var, A.mx, A.my, B.mx, B.my);
      d2[j] = scale * lm_equivariance_grad(lm_prob(b[j], B.zmax, B.inv_sum), gp[2 * j] - B.mx,
                                           gp[2 * j + 1] - B.my, B.var, B.mx, B.my, A.mx, A.my);
    }
  }
}

// out = offset + scale * sum(part[0, n)), summed by one block in a fixed order.
template <typename T>
__global__ void finish_kernel(const T* __restrict__ part, int64_t n, T offset, T scale,
                              T* __restrict__ out) {
  T s = 0, unused = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
  block_sum2(s, unused);
  if (threadIdx.x == 0) out[0] = offset + scale * s;
}

// Softmax statistics of the K maps of one image, one warp per map: st[2k] = max,
// st[2k + 1] = 1 / sum exp(z - max). Ends with a barrier, so the block may read st.
template <typename T>
__device__ void image_stats(const T* xi, int64_t K, int64_t hw, T* st) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t k = warp; k < K; k += warps) {
    SoftmaxState<T> s = softmax_init<T>();
    for (int64_t j = lane; j < hw; j += 32) softmax_add(s, xi[k * hw + j]);
    s = softmax_warp_merge(s);
    if (lane == 0) {
      st[2 * k] = s.m;
      st[2 * k + 1] = T(1) / s.s;
    }
  }
  __syncthreads();
}

// The winner of cell (ci, cj) of one image (scanning r = 0, 1, ...) and its mass P.
template <typename T>
__device__ T cell_winner(const T* xi, const T* st, int64_t K, int64_t h, int64_t w, int64_t m,
                         int64_t ci, int64_t cj, int& winner) {
  using std::exp;
  T best = T(0);
  winner = 0;
  for (int64_t r = 0; r < K; ++r) {
    const T* z = xi + r * h * w + (ci * m) * w + cj * m;
    T e = 0;
    for (int64_t di = 0; di < m; ++di)
      for (int64_t dj = 0; dj < m; ++dj) e += exp(z[di * w + dj] - st[2 * r]);
    const T P = e * st[2 * r + 1];
    if (r == 0 || lm_cell_beats(P, best)) {
      best = P;
      winner = static_cast<int>(r);
    }
  }
  return best;
}

template <typename T>
__global__ void diversity_kernel(const T* __restrict__ x, T* __restrict__ stats,
                                 T* __restrict__ image_best, int64_t N, int64_t K, int64_t h,
                                 int64_t w, int64_t m) {
  const int64_t hw = h * w, cw = w / m, cells = (h / m) * cw;
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xi = x + n * K * hw;
    T* st = stats + n * K * 2;
    image_stats(xi, K, hw, st);
    T acc = 0, unused = 0;
    for (int64_t c = threadIdx.x; c < cells; c += blockDim.x) {
      int r;
      const int64_t ci = div31(c, cw);
      acc += cell_winner(xi, st, K, h, w, m, ci, c - ci * cw, r);
    }
    block_sum2(acc, unused);
    if (threadIdx.x == 0) image_best[n] = acc;
  }
}

template <typename T>
__global__ void diversity_backward_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                          T* __restrict__ stats, int* __restrict__ winner,
                                          T* __restrict__ win_mass, T* __restrict__ won,
                                          T* __restrict__ dx, int64_t N, int64_t K, int64_t h,
                                          int64_t w, int64_t m) {
  const int64_t hw = h * w, cw = w / m, cells = (h / m) * cw;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const T scale = -g[0] / T(N);
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xi = x + n * K * hw;
    T* st = stats + n * K * 2;
    int* wi = winner + n * cells;
    T* wm = win_mass + n * cells;
    T* wk = won + n * K;
    image_stats(xi, K, hw, st);
    for (int64_t c = threadIdx.x; c < cells; c += blockDim.x) {
      int r;
      const int64_t ci = div31(c, cw);
      wm[c] = cell_winner(xi, st, K, h, w, m, ci, c - ci * cw, r);
      wi[c] = r;
    }
    __syncthreads();
    // W_k, the mass landmark k holds in the cells it wins: one warp per landmark.
    for (int64_t k = warp; k < K; k += warps) {
      T s = 0;
      for (int64_t c = lane; c < cells; c += 32)
        if (wi[c] == k) s += wm[c];
      s = warp_sum(s);
      if (lane == 0) wk[k] = s;
    }
    __syncthreads();
    T* di = dx + n * K * hw;
    for (int64_t e = threadIdx.x; e < K * hw; e += blockDim.x) {
      const int64_t k = div31(e, hw), j = e - k * hw, i = div31(j, w), c = j - i * w;
      const T p = lm_prob(xi[e], st[2 * k], st[2 * k + 1]);
      di[e] = scale * lm_diversity_grad(p, wi[div31(i, m) * cw + div31(c, m)] == k, wk[k]);
    }
  }
}

int capped_grid(int64_t blocks) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535)));
}

}  // namespace

void landmark_equivariance_loss_cuda(const Tensor& x, const Tensor& x2, const Tensor& grid,
                                     const Tensor& out) {
  const int64_t N = x.size(0), K = x.size(1), h = x.size(2), w = x.size(3);
  check_image_fits("landmark_equivariance_loss", K, h, w);
  const Tensor plane_loss = Tensor::empty({N * K}, x.options());
  dispatch_floating(x.dtype(), "landmark_equivariance_loss", [&](auto tag) {
    using T = decltype(tag);
    equivariance_kernel<T><<<capped_grid(N * K), kPlaneThreads>>>(
        x.data<T>(), x2.data<T>(), grid.data<T>(), plane_loss.data<T>(), N * K, K, h, w);
    CVG_CUDA_CHECK_LAUNCH("landmark_equivariance_loss");
    finish_kernel<T><<<1, kFinishThreads>>>(plane_loss.data<T>(), N * K, T(0),
                                            static_cast<T>(1.0 / static_cast<double>(N * K)),
                                            out.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("landmark_equivariance_loss (final sum)");
}

void landmark_equivariance_loss_backward_cuda(const Tensor& g, const Tensor& x, const Tensor& x2,
                                              const Tensor& grid, const Tensor& dx) {
  const int64_t N = x.size(0), K = x.size(1), h = x.size(2), w = x.size(3);
  check_image_fits("landmark_equivariance_loss_backward", K, h, w);
  dispatch_floating(x.dtype(), "landmark_equivariance_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    equivariance_backward_kernel<T><<<capped_grid(N * K), kPlaneThreads>>>(
        g.data<T>(), x.data<T>(), x2.data<T>(), grid.data<T>(), dx.data<T>(), N * K, K, h, w);
  });
  CVG_CUDA_CHECK_LAUNCH("landmark_equivariance_loss_backward");
}

void landmark_diversity_loss_cuda(const Tensor& x, int64_t m, const Tensor& out) {
  const int64_t N = x.size(0), K = x.size(1), h = x.size(2), w = x.size(3);
  check_image_fits("landmark_diversity_loss", K, h, w);
  const Tensor stats = Tensor::empty({N, K, 2}, x.options());
  const Tensor image_best = Tensor::empty({N}, x.options());
  dispatch_floating(x.dtype(), "landmark_diversity_loss", [&](auto tag) {
    using T = decltype(tag);
    diversity_kernel<T><<<capped_grid(N), kImageThreads>>>(
        x.data<T>(), stats.data<T>(), image_best.data<T>(), N, K, h, w, m);
    CVG_CUDA_CHECK_LAUNCH("landmark_diversity_loss");
    finish_kernel<T><<<1, kFinishThreads>>>(image_best.data<T>(), N, static_cast<T>(K),
                                            static_cast<T>(-1.0 / static_cast<double>(N)),
                                            out.data<T>());
  });
  CVG_CUDA_CHECK_LAUNCH("landmark_diversity_loss (final sum)");
}

void landmark_diversity_loss_backward_cuda(const Tensor& g, const Tensor& x, int64_t m,
                                           const Tensor& dx) {
  const int64_t N = x.size(0), K = x.size(1), h = x.size(2), w = x.size(3);
  check_image_fits("landmark_diversity_loss_backward", K, h, w);
  const int64_t cells = (h / m) * (w / m);
  const Tensor stats = Tensor::empty({N, K, 2}, x.options());
  const Tensor winner = Tensor::empty({N, cells}, x.options().with_dtype(DType::int32));
  const Tensor win_mass = Tensor::empty({N, cells}, x.options());
  const Tensor won = Tensor::empty({N, K}, x.options());
  dispatch_floating(x.dtype(), "landmark_diversity_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    diversity_backward_kernel<T><<<capped_grid(N), kImageThreads>>>(
        g.data<T>(), x.data<T>(), stats.data<T>(), winner.data<int32_t>(), win_mass.data<T>(),
        won.data<T>(), dx.data<T>(), N, K, h, w, m);
  });
  CVG_CUDA_CHECK_LAUNCH("landmark_diversity_loss_backward");
}

}  // namespace cvg
