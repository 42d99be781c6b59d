// CUDA kernel of nll_class_weights (kernels/loss.h): one thread per target (grid-stride),
// writing weight[t] into the zero-filled W[n, t, i]. Distinct targets write distinct entries,
// so there are no races on W. An invalid target is stored into bad[0]; several bad threads
// may race there, and any of their values makes a correct error message.
#include <cuda_runtime.h>

#include "kernels/loss.h"

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
}  // namespace

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
