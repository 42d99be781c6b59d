#include "core/storage.h"

#include <cstdlib>
#include <new>

#include "core/error.h"
#ifdef CVG_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace cvg {

void* allocate_bytes(size_t nbytes, Device device) {
  if (device.is_cpu()) {
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

}  // namespace cvg
