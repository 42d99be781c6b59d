#pragma once
// CUDA runtime entry points (only compiled when the build has CUDA). Plain C++: no CUDA header
// is needed to include this.
//
// Device memory comes from a caching allocator (core/cuda_allocator.h explains the policy),
// one per device. Copies between host and device go through cuda_memcpy, which names the op in
// its error. Device properties: core/cuda_device.h. Checked CUDA calls: core/cuda_check.h.
#include <cstddef>

#include "core/cuda_allocator.h"

namespace cvg {

// ---- memory ----
void* cuda_allocate(size_t nbytes, int device);
void cuda_free(void* p, size_t nbytes, int device);
// Statistics of the allocator of `device` (see CudaMemoryStats; to_string() formats them).
CudaMemoryStats cuda_memory_stats(int device = 0);
// Returns the cached free blocks of every device's allocator to the driver (what nvidia-smi
// shows drops); live tensors are not affected.
void cuda_empty_cache();
void cuda_reset_peak_memory_stats(int device = 0);
// False when the environment has CVG_CUDA_CACHE=0 at the first allocation: every tensor then
// gets its own cudaMalloc and cudaFree (for compute-sanitizer and leak hunting).
bool cuda_caching_enabled();

// ---- copies ----
enum class CopyKind { host_to_device, device_to_host, device_to_device };
// Synchronous copy. Host->device and device->host copies of at least kPinnedStagingMin bytes
// go through a pinned (page-locked) host buffer in chunks, which the GPU reads/writes by DMA at
// full PCIe/NVLink speed; smaller ones go straight from pageable memory.
void cuda_memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, const char* op);
inline constexpr size_t kPinnedStagingMin = size_t(1) << 20;

// ---- devices ----
int cuda_device_count();
// Waits for all queued work on the current device (timing, error surfacing).
void cuda_synchronize();

}  // namespace cvg
