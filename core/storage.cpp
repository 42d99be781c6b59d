#include "core/storage.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
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

// Blocks of kLargeHostBlock bytes and more (the ones glibc maps and unmaps one by one, above) are
// mapped here instead, 2 MiB aligned and advised as transparent huge pages: each such block is
// touched afresh after every allocation, and with 4 KiB pages that is a page fault per 4 KiB.
// A full-size Deep Matching pair (741 x 500, R_0 = 80: 4-D tensors of 150 MB and more) spent
// 22 % of its CPU time in those faults (perf, in a VM, where each fault is dearer). Huge pages
// cut the faults 512-fold; the advice is only advice (a kernel without THP, or without a free
// huge page, maps 4 KiB pages as before). The block keeps the 64 bytes of slack past its end
// that every host block has.
#if defined(__linux__)
constexpr size_t kLargeHostBlock = size_t{64} << 20;
constexpr size_t kHugePage = size_t{2} << 20;

size_t huge_length(size_t nbytes) { return (nbytes + 64 + kHugePage - 1) / kHugePage * kHugePage; }

void* map_large(size_t nbytes) {
  const size_t body = huge_length(nbytes), len = body + kHugePage;  // room to align
  void* raw = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  const size_t head = aligned - start, tail = len - head - body;
  if (head > 0) munmap(raw, head);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + body), tail);
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, body, MADV_HUGEPAGE);  // advice: failing leaves 4 KiB pages
  return p;
}

// Heap blocks of a few MiB fault the same way the first time their memory is touched (a fresh
// process: the HOG descriptor of a 641 x 555 image spent 22 % of a match there). The whole
// 2 MiB pages inside such a block are advised as huge pages too; memory the heap hands out
// again is already mapped and keeps its pages (a training loop's steady state is unchanged).
constexpr size_t kHugeAdviceBytes = size_t{4} << 20;

void advise_huge_pages(void* p, size_t nbytes) {
  if (nbytes < kHugeAdviceBytes) return;
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t lo = (start + kHugePage - 1) / kHugePage * kHugePage;
  const uintptr_t hi = (start + nbytes) / kHugePage * kHugePage;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
}
#endif

}  // namespace

size_t host_block_alignment(size_t nbytes) {
#if defined(__linux__)
  if (nbytes >= kLargeHostBlock) return kHugePage;
#else
  (void)nbytes;
#endif
  return 64;
}

void* allocate_bytes(size_t nbytes, Device device) {
  if (device.is_cpu()) {
#if defined(__linux__)
    if (nbytes >= kLargeHostBlock) {
      void* p = map_large(nbytes);
      CVG_CHECK(p != nullptr, "allocate: out of host memory asking for ", nbytes, " bytes");
      return p;
    }
#endif
    keep_freed_host_memory();
    // aligned_alloc needs a size that is a multiple of the alignment; zero-size tensors still
    // get a valid, unique pointer.
    const size_t rounded = ((nbytes + 63) / 64) * 64 + 64;
    void* p = std::aligned_alloc(64, rounded);
    CVG_CHECK(p != nullptr, "allocate: out of host memory asking for ", nbytes, " bytes");
#if defined(__linux__)
    advise_huge_pages(p, nbytes);
#endif
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
#if defined(__linux__)
    if (nbytes >= kLargeHostBlock) {
      munmap(p, huge_length(nbytes));
      return;
    }
#endif
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
