// Fused optimizer updates on CUDA: one kernel per parameter tensor (Adam: per batch of up to 24
// tensors), one thread per element, reading the gradient and updating parameter and state in a
// single pass. The math is nn/optim_math.h, the same code the CPU loop in nn/optim.cpp runs.
#include <cuda_runtime.h>

#include <vector>

#include "nn/optim.h"

namespace cvg::nn {

namespace {

template <typename T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, SgdHyper h) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    sgd_update<T>(p, g, buf, i, h);
}

template <typename T>
__global__ void rmsprop_kernel(T* p, const T* g, T* sq, T* buf, int64_t n, RmspropHyper h) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    rmsprop_update<T>(p, g, sq, buf, i, h);
}

// Adam over many parameters in few launches (as PyTorch's multi-tensor path does): a launch takes
// up to kAdamBatch tensors of one dtype, and block b updates chunk b - first[t] of the tensor t
// whose blocks hold it. A network's 20-odd parameters then cost one launch instead of 20-odd
// (the landmarks detector's step has 22).
constexpr int kAdamBatch = 24;
constexpr int64_t kAdamChunk = 256 * 8;  // elements per block
template <typename T>
struct AdamBatch {
  T* p[kAdamBatch];
  const T* g[kAdamBatch];
  T* m[kAdamBatch];
  T* v[kAdamBatch];
  int64_t n[kAdamBatch];
  int64_t first[kAdamBatch + 1];  // first block of each tensor; first[count]: all blocks
  int count;
};

template <typename T>
__global__ void adam_batch_kernel(AdamBatch<T> b, AdamHyper h) {
  int t = 0;
  while (t + 1 < b.count && static_cast<int64_t>(blockIdx.x) >= b.first[t + 1]) ++t;
  const int64_t begin = (static_cast<int64_t>(blockIdx.x) - b.first[t]) * kAdamChunk;
  const int64_t end = begin + kAdamChunk < b.n[t] ? begin + kAdamChunk : b.n[t];
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    adam_update<T>(b.p[t], b.g[t], b.m[t], b.v[t], i, h);
}

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + 255) / 256, 4096)); }

void check_launch(const char* op) {
  const cudaError_t e = cudaGetLastError();
  CVG_CHECK(e == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(e));
}

}  // namespace

void sgd_step_cuda(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdHyper& h) {
  if (p.numel() == 0) return;
  dispatch_floating(p.dtype(), "SGD", [&](auto tag) {
    using T = decltype(tag);
    sgd_kernel<T><<<blocks_for(p.numel()), 256>>>(p.data<T>(), g.data<T>(), buf.data<T>(),
                                                  p.numel(), h);
  });
  check_launch("SGD");
}

void adam_step_cuda(const std::vector<AdamSlot>& slots, const AdamHyper& h) {
  size_t at = 0;
  while (at < slots.size()) {
    const DType dt = slots[at].p.dtype();
    dispatch_floating(dt, "Adam", [&](auto tag) {
      using T = decltype(tag);
      AdamBatch<T> b{};
      int64_t blocks = 0;
      // The next run of up to kAdamBatch slots of this dtype (empty parameters skipped).
      for (; at < slots.size() && b.count < kAdamBatch && slots[at].p.dtype() == dt; ++at) {
        const AdamSlot& s = slots[at];
        if (s.p.numel() == 0) continue;
        b.p[b.count] = s.p.data<T>();
        b.g[b.count] = s.g.data<T>();
        b.m[b.count] = s.m.data<T>();
        b.v[b.count] = s.v.data<T>();
        b.n[b.count] = s.p.numel();
        b.first[b.count] = blocks;
        blocks += (s.p.numel() + kAdamChunk - 1) / kAdamChunk;
        ++b.count;
      }
      b.first[b.count] = blocks;
      if (b.count == 0) return;
      CVG_CHECK(blocks <= 0x7fffffff, "Adam: ", blocks, " blocks exceed a grid");
      adam_batch_kernel<T><<<static_cast<unsigned>(blocks), 256>>>(b, h);
    });
    check_launch("Adam");
  }
}

void rmsprop_step_cuda(const Tensor& p, const Tensor& g, const Tensor& sq, const Tensor& buf,
                       const RmspropHyper& h) {
  if (p.numel() == 0) return;
  dispatch_floating(p.dtype(), "RMSprop", [&](auto tag) {
    using T = decltype(tag);
    rmsprop_kernel<T><<<blocks_for(p.numel()), 256>>>(p.data<T>(), g.data<T>(), sq.data<T>(),
                                                      buf.data<T>(), p.numel(), h);
  });
  check_launch("RMSprop");
}

}  // namespace cvg::nn
