// CUDA runtime for core/: host<->device copies (with pinned staging for large ones), device
// count and synchronisation. Allocation lives in core/cuda_allocator.cu, device properties in
// core/cuda_device.cu.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "core/cuda_check.h"
#include "core/cuda_runtime.h"

namespace cvg {

namespace {

// Two pinned host buffers per device, used alternately so that the CPU's memcpy into (or out
// of) one overlaps the DMA transfer of the other. An event per buffer says when its DMA is done.
struct PinnedStaging {
  static constexpr size_t kChunk = size_t(4) << 20;
  std::mutex mu;
  char* buf[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {};

  void init_locked(const char* op) {
    if (buf[0]) return;
    for (int i = 0; i < 2; ++i) {
      CVG_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&buf[i]), kChunk,
                                   cudaHostAllocDefault),
                     op);
      CVG_CUDA_CHECK(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming), op);
    }
  }

  // Host -> device: chunk i is copied into buf[i % 2] (after that buffer's previous DMA has
  // finished), then its DMA is queued on the default stream.
  void to_device(char* dst, const char* src, size_t n, const char* op) {
    std::lock_guard<std::mutex> lock(mu);
    init_locked(op);
    int i = 0;
    for (size_t off = 0; off < n; off += kChunk, i ^= 1) {
      const size_t len = std::min(kChunk, n - off);
      CVG_CUDA_CHECK(cudaEventSynchronize(done[i]), op);
      std::memcpy(buf[i], src + off, len);
      CVG_CUDA_CHECK(cudaMemcpyAsync(dst + off, buf[i], len, cudaMemcpyHostToDevice, 0), op);
      CVG_CUDA_CHECK(cudaEventRecord(done[i], 0), op);
    }
    // Like cudaMemcpy, return with the data on the device.
    CVG_CUDA_CHECK(cudaEventSynchronize(done[0]), op);
    CVG_CUDA_CHECK(cudaEventSynchronize(done[1]), op);
  }

  // Device -> host: the DMA of chunk i+1 is queued before the CPU copies chunk i out, so they
  // overlap. Buffer i % 2 is refilled only after the CPU has copied it out (program order).
  void to_host(char* dst, const char* src, size_t n, const char* op) {
    std::lock_guard<std::mutex> lock(mu);
    init_locked(op);
    const size_t chunks = (n + kChunk - 1) / kChunk;
    auto queue = [&](size_t c) {
      const size_t off = c * kChunk, len = std::min(kChunk, n - off);
      CVG_CUDA_CHECK(cudaMemcpyAsync(buf[c % 2], src + off, len, cudaMemcpyDeviceToHost, 0), op);
      CVG_CUDA_CHECK(cudaEventRecord(done[c % 2], 0), op);
    };
    queue(0);
    for (size_t c = 0; c < chunks; ++c) {
      if (c + 1 < chunks) queue(c + 1);
      CVG_CUDA_CHECK(cudaEventSynchronize(done[c % 2]), op);
      const size_t off = c * kChunk;
      std::memcpy(dst + off, buf[c % 2], std::min(kChunk, n - off));
    }
  }
};

// Per device, created on first use and kept until the process ends (freeing pinned memory
// during static destruction races with the CUDA runtime's own teardown).
PinnedStaging& staging_for_current_device(const char* op) {
  constexpr int kMaxDevices = 64;
  static PinnedStaging* per_device[kMaxDevices] = {};
  static std::mutex mu;
  int dev = 0;
  CVG_CUDA_CHECK(cudaGetDevice(&dev), op);
  CVG_CHECK(dev < kMaxDevices, op, ": device index ", dev, " out of range");
  std::lock_guard<std::mutex> lock(mu);
  if (!per_device[dev]) per_device[dev] = new PinnedStaging();
  return *per_device[dev];
}

}  // namespace

void cuda_memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, const char* op) {
  if (nbytes == 0) return;
  if (nbytes >= kPinnedStagingMin && kind == CopyKind::host_to_device)
    return staging_for_current_device(op).to_device(static_cast<char*>(dst),
                                                    static_cast<const char*>(src), nbytes, op);
  if (nbytes >= kPinnedStagingMin && kind == CopyKind::device_to_host)
    return staging_for_current_device(op).to_host(static_cast<char*>(dst),
                                                  static_cast<const char*>(src), nbytes, op);
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

void cuda_synchronize() { CVG_CUDA_CHECK(cudaDeviceSynchronize(), "cuda_synchronize"); }

}  // namespace cvg
