#pragma once
// CUDA runtime entry points used by core/ (only compiled when the build has CUDA).
// Device memory comes from a caching allocator; copies between host and device go through
// cuda_memcpy, which names the op in its error.
#include <cstddef>

namespace cvg {

void* cuda_allocate(size_t nbytes, int device);
void cuda_free(void* p, size_t nbytes, int device);
enum class CopyKind { host_to_device, device_to_host, device_to_device };
void cuda_memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, const char* op);
int cuda_device_count();

}  // namespace cvg
