// CUDA kernels of the losses (kernels/loss.h).
//   nll_class_weights: one thread per target (grid-stride), writing weight[t] into the
//     zero-filled W[n, t, i]. Distinct targets write distinct entries, so W has no races.
//   cross_entropy_fused: one block per row of logits (grid-stride over rows); 32 threads for
//     rows of up to 1024 classes, 256 above. The block computes the row's online softmax
//     state (softmax_block_state, kernels/softmax_cuda.cuh), thread 0 writes the loss, and all
//     threads write the row of dlogits (kernels/loss_math.h, the same math as the CPU loop).
// An invalid target is stored into bad[0]; several bad threads may race there, and any of
// their values makes a correct error message.
#include <cuda_runtime.h>

#include "kernels/loss.h"
#include "kernels/loss_math.h"
#include "kernels/softmax_cuda.cuh"

namespace cvg {

namespace {
template <typename I, typename T>
__global__ void class_weights_kernel(const I* target, const T* weight, T* W, int64_t count,
                                     int64_t C, int64_t inner, int64_t ignore_index,
                                     int64_t* bad) {
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < count;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = static_cast<int64_t>(target[k]);
    if (c == ignore_index) continue;
    if (c < 0 || c >= C) {
      *bad = c;
      continue;
    }
    const int64_t n = k / inner, i = k % inner;
    W[(n * C + c) * inner + i] = weight ? weight[c] : T(1);
  }
}

template <typename I, typename T>
__global__ void cross_entropy_fused_kernel(const T* x, const I* target, const T* weight, int64_t N,
                                           int64_t C, int64_t ignore_index, T* losses,
                                           T* row_weight, T* dlogits, int64_t* bad) {
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * C;
    T* dr = dlogits + n * C;
    const int64_t t = static_cast<int64_t>(target[n]);
    // t is the same for the whole block, so the branch (and the barriers in
    // softmax_block_state) is taken by all threads or none.
    if (t == ignore_index || t < 0 || t >= C) {
      if (t != ignore_index && threadIdx.x == 0) *bad = t;
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dr[c] = T(0);
      if (threadIdx.x == 0) {
        losses[n] = T(0);
        row_weight[n] = T(0);
      }
      continue;
    }
    const T w = weight ? weight[t] : T(1);
    const SoftmaxState<T> st = softmax_block_state(xr, C);
    if (threadIdx.x == 0) {
      losses[n] = cross_entropy_row_loss(xr[t], st, w);
      row_weight[n] = w;
    }
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      dr[c] = cross_entropy_dlogit(xr[c], st, c == t, w);
  }
}

}  // namespace

void cross_entropy_fused_cuda(const Tensor& logits, const Tensor& target, const Tensor& weight,
                              int64_t ignore_index, const Tensor& losses,
                              const Tensor& row_weight, const Tensor& dlogits, const Tensor& bad) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  if (N == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>(N, 65535));
  const int threads = C <= 1024 ? 32 : 256;
  dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    auto launch = [&](auto itag) {
      using I = decltype(itag);
      cross_entropy_fused_kernel<I, T><<<blocks, threads>>>(
          logits.data<T>(), target.data<I>(), pw, N, C, ignore_index, losses.data<T>(),
          row_weight.data<T>(), dlogits.data<T>(), bad.data<int64_t>());
    };
    if (target.dtype() == DType::int64) launch(int64_t{});
    else launch(int32_t{});
  });
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, "cross_entropy: CUDA kernel launch failed: ", cudaGetErrorString(e));
}

void nll_class_weights_cuda(const Tensor& target, const Tensor& weight, const Tensor& W,
                            int64_t C, int64_t inner, int64_t ignore_index, const Tensor& bad) {
  const int64_t count = target.numel();
  if (count == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((count + 255) / 256, 65535));
  dispatch_floating(W.dtype(), "nll_loss", [&](auto wtag) {
    using T = decltype(wtag);
    const T* pw = weight.defined() ? weight.data<T>() : nullptr;
    if (target.dtype() == DType::int64)
      class_weights_kernel<int64_t, T><<<blocks, 256>>>(target.data<int64_t>(), pw, W.data<T>(),
                                                        count, C, inner, ignore_index,
                                                        bad.data<int64_t>());
    else
      class_weights_kernel<int32_t, T><<<blocks, 256>>>(target.data<int32_t>(), pw, W.data<T>(),
                                                        count, C, inner, ignore_index,
                                                        bad.data<int64_t>());
  });
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, "nll_loss: CUDA kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace cvg
