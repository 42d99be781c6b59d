// The CUDA instance of CachingAllocator (core/cuda_allocator.h): one allocator per device over
// cudaMalloc/cudaFree, and the public memory functions of core/cuda_runtime.h.
#include <cuda_runtime.h>

#include <cstdlib>
#include <mutex>

#include "core/cuda_check.h"
#include "core/cuda_runtime.h"

namespace cvg {

namespace {

// Makes `device` current for the scope and restores the previous one.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&prev_) != cudaSuccess) prev_ = -1;
    if (prev_ != device) cudaSetDevice(device);
  }
  ~DeviceScope() {
    int cur = -1;
    if (prev_ >= 0 && cudaGetDevice(&cur) == cudaSuccess && cur != prev_) cudaSetDevice(prev_);
  }

 private:
  int prev_ = -1;
};

struct CudaBackend {
  int device = 0;

  void* alloc(size_t n) {
    DeviceScope scope(device);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, n);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it: the allocator frees its cache and retries
      return nullptr;
    }
    if (e != cudaSuccess) cuda_fail(e, "cuda_allocate", "cudaMalloc", __FILE__, __LINE__);
    return p;
  }

  void free(void* p) noexcept {
    DeviceScope scope(device);
    // Errors are dropped: this runs in destructors, and at process exit the runtime may
    // already be shut down (cudaErrorCudartUnloading), when the driver reclaims everything.
    if (cudaFree(p) != cudaSuccess) cudaGetLastError();
  }

  std::string describe() const {
    DeviceScope scope(device);
    size_t free_b = 0, total_b = 0;
    cudaDeviceProp prop{};
    std::string name = "?";
    if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) name = prop.name;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
    return str_cat("cuda:", device, " (", name, ", ", format_bytes(free_b), " free of ",
                   format_bytes(total_b), ")");
  }
};

using DeviceAllocator = CachingAllocator<CudaBackend>;

bool caching_from_env() {
  static const bool on = [] {
    const char* v = std::getenv("CVG_CUDA_CACHE");
    return !(v && v[0] == '0' && v[1] == '\0');
  }();
  return on;
}

constexpr int kMaxDevices = 64;
std::mutex g_mu;
// Created on first use and never destroyed: destroying them during static destruction would
// call cudaFree after the CUDA runtime may have shut down. The driver frees it all at exit.
DeviceAllocator* g_allocators[kMaxDevices] = {};

DeviceAllocator& allocator(int device) {
  CVG_CHECK(device >= 0 && device < kMaxDevices, "cuda allocator: bad device index ", device);
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_allocators[device])
    g_allocators[device] = new DeviceAllocator(CudaBackend{device}, caching_from_env());
  return *g_allocators[device];
}

}  // namespace

void* cuda_allocate(size_t nbytes, int device) {
  static const int n = cuda_device_count();
  CVG_CHECK(device >= 0 && device < n, "cuda_allocate: device cuda:", device,
            " does not exist (", n, " CUDA device", n == 1 ? "" : "s", " visible)");
  return allocator(device).allocate(nbytes);
}

void cuda_free(void* p, size_t, int device) {
  if (!p || device < 0 || device >= kMaxDevices) return;
  allocator(device).release(p);
}

CudaMemoryStats cuda_memory_stats(int device) { return allocator(device).stats(); }

void cuda_reset_peak_memory_stats(int device) { allocator(device).reset_peak_stats(); }

void cuda_empty_cache() {
  std::lock_guard<std::mutex> lock(g_mu);
  for (DeviceAllocator* a : g_allocators)
    if (a) a->empty_cache();
}

bool cuda_caching_enabled() { return caching_from_env(); }

}  // namespace cvg
