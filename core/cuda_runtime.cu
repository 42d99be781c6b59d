// Minimal CUDA runtime for core/: plain cudaMalloc/cudaFree with checked errors. The CUDA backend
// issue replaces the allocation with a caching allocator (size classes, statistics).
#include <cuda_runtime.h>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace cvg {

static void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    fail(what, ": CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") at ", file,
         ":", line);
}
#define CVG_CUDA_CHECK(expr, what) check((expr), (what), __FILE__, __LINE__)

void* cuda_allocate(size_t nbytes, int device) {
  CVG_CUDA_CHECK(cudaSetDevice(device), "cuda_allocate");
  void* p = nullptr;
  CVG_CUDA_CHECK(cudaMalloc(&p, nbytes == 0 ? 1 : nbytes), "cuda_allocate");
  return p;
}

void cuda_free(void* p, size_t, int) { cudaFree(p); }

void cuda_memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, const char* op) {
  const cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                              : cudaMemcpyDeviceToDevice;
  CVG_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, k), op);
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

}  // namespace cvg
