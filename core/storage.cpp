#include "core/storage.h"

#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/error.h"
#ifdef CVG_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace cvg {

namespace {

// glibc serves blocks above its mmap threshold with fresh mmaps and returns them on free, and
// trims freed memory at the top of the heap: a training loop that allocates the same
// few-megabyte buffers every step (conv2d's column matrices, activations) then pays a page fault
// per 4 KiB touched, every step (5 % of a DANN step on the CPU, in the kernel's page clearing).
// Raising both limits keeps such blocks in the heap for reuse, as a caching allocator would;
// tensors of 64 MiB and more are still mapped and unmapped one by one.
void keep_freed_host_memory() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  });
#endif
}

}  // namespace

void* allocate_bytes(size_t nbytes, Device device) {
  if (device.is_cpu()) {
    keep_freed_host_memory();
    // aligned_alloc needs a size that is a multiple of the alignment; zero-size tensors still
    // get a valid, unique pointer.
    const size_t rounded = ((nbytes + 63) / 64) * 64 + 64;
    void* p = std::aligned_alloc(64, rounded);
    CVG_CHECK(p != nullptr, "allocate: out of host memory asking for ", nbytes, " bytes");
    return p;
  }
#ifdef CVG_WITH_CUDA
  return cuda_allocate(nbytes, device.index);
#else
  fail("allocate: cvgrad was built without CUDA, cannot allocate on ", device.str());
#endif
}

void free_bytes(void* p, size_t nbytes, Device device) {
  if (!p) return;
  if (device.is_cpu()) {
    std::free(p);
    return;
  }
#ifdef CVG_WITH_CUDA
  cuda_free(p, nbytes, device.index);
#else
  (void)nbytes;
#endif
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = allocate_bytes(nbytes, device);
}

Storage::~Storage() { free_bytes(data_, nbytes_, device_); }

}  // namespace cvg

namespace cvg {

bool cuda_available() {
#ifdef CVG_WITH_CUDA
  static const bool available = cuda_device_count() > 0;
  return available;
#else
  return false;
#endif
}

void synchronize(Device d) {
  if (!d.is_cuda()) return;
#ifdef CVG_WITH_CUDA
  cuda_synchronize();
#else
  fail("synchronize: ", d, " requested, but this build has no CUDA");
#endif
}

}  // namespace cvg
