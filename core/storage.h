#pragma once
// Storage: a reference-counted block of bytes on one device. Tensors that are views of each
// other (reshape, permute, slice, expand, detach) share one Storage. The storage also carries
// the version counter that in-place ops bump, so that autograd can detect a saved tensor that
// was modified after it was saved (see SavedTensor in core/autograd.h).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/device.h"

namespace cvg {

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  uint64_t version_ = 0;
};

// Raw allocation entry points. CPU memory is 64-byte aligned, with 64 bytes of slack past the
// end; blocks of 64 MiB and more are mapped as transparent huge pages, 2 MiB aligned, and the
// whole 2 MiB pages of heap blocks of 4 MiB and more are advised as huge pages
// (core/storage.cpp says why). free_bytes takes the nbytes the block was allocated with. CUDA
// memory comes from the caching allocator of the CUDA backend; without it, asking for CUDA
// memory throws.
void* allocate_bytes(size_t nbytes, Device device);
void free_bytes(void* p, size_t nbytes, Device device);
// The alignment allocate_bytes gives a host block of nbytes.
size_t host_block_alignment(size_t nbytes);

}  // namespace cvg
