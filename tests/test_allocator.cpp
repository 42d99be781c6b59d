// The caching allocator's bookkeeping (core/cuda_allocator.h), run on the CPU with a fake
// backend that hands out host memory and can be told to run out of it. The same template runs
// over cudaMalloc in CUDA builds (tests/test_cuda_runtime_cuda.cpp checks that instance).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <set>
#include <string>
#include <unordered_map>

#include "core/cuda_allocator.h"

using namespace cvg;

namespace {

// Shared state so a test can inspect the backend after handing it to the allocator.
struct FakeDevice {
  size_t capacity = size_t(1) << 40;  // bytes the "device" may hand out
  size_t in_use = 0;
  int allocs = 0, frees = 0;
  std::set<void*> live;
  std::unordered_map<void*, size_t> sizes;
  int foreign_frees = 0;  // frees of pointers this device never handed out
};

struct FakeBackend {
  FakeDevice* dev;
  void* alloc(size_t n) {
    if (dev->in_use + n > dev->capacity) return nullptr;
    void* p = std::malloc(n);
    dev->in_use += n;
    ++dev->allocs;
    dev->live.insert(p);
    dev->sizes[p] = n;
    return p;
  }
  void free(void* p) {  // must not throw (the allocator calls it from noexcept paths)
    if (dev->live.count(p) != 1) {  // a double free or a foreign pointer
      ++dev->foreign_frees;
      return;
    }
    dev->live.erase(p);
    dev->in_use -= dev->sizes.at(p);
    dev->sizes.erase(p);
    ++dev->frees;
    std::free(p);
  }
  std::string describe() const { return "fake device"; }
};

using Alloc = CachingAllocator<FakeBackend>;
constexpr size_t KiB = 1024, MiB = 1024 * 1024;

}  // namespace

TEST_CASE("allocator: size classes round small requests to 512 B and large ones to 2 MiB",
          "[allocator]") {
  CHECK(Alloc::round_size(0) == 512);
  CHECK(Alloc::round_size(1) == 512);
  CHECK(Alloc::round_size(512) == 512);
  CHECK(Alloc::round_size(513) == 1024);
  CHECK(Alloc::round_size(1 * MiB) == 1 * MiB);  // the largest small class
  CHECK(Alloc::round_size(1 * MiB + 1) == 2 * MiB);
  CHECK(Alloc::round_size(2 * MiB + 1) == 4 * MiB);
  CHECK(Alloc::round_size(5 * MiB) == 6 * MiB);
}

TEST_CASE("allocator: a freed block is reused for a request of the same size class",
          "[allocator]") {
  FakeDevice dev;
  Alloc a(FakeBackend{&dev});
  void* p = a.allocate(1000);
  a.release(p);
  void* q = a.allocate(900);  // same 1024-byte class
  CHECK(q == p);
  CHECK(dev.allocs == 1);
  void* r = a.allocate(2000);  // another class: a new block, the cached one is not split
  CHECK(r != p);
  CHECK(dev.allocs == 2);
  const CudaMemoryStats s = a.stats();
  CHECK(s.num_allocs == 3);
  CHECK(s.num_cache_hits == 1);
  CHECK(s.num_backend_allocs == 2);
  CHECK(s.allocated == 1024 + 2048);
  CHECK(s.requested == 900 + 2000);
  a.release(q);
  a.release(r);
}

TEST_CASE("allocator: a larger cached block is not handed out for a smaller request",
          "[allocator]") {
  FakeDevice dev;
  Alloc a(FakeBackend{&dev});
  void* big = a.allocate(8 * MiB);
  a.release(big);
  void* small = a.allocate(4 * MiB);
  CHECK(small != big);
  CHECK(a.stats().cached == 8 * MiB);
  CHECK(a.stats().reserved == 12 * MiB);
  a.release(small);
}

TEST_CASE("allocator: statistics track allocated, reserved, cached and peaks", "[allocator]") {
  FakeDevice dev;
  Alloc a(FakeBackend{&dev});
  void* p1 = a.allocate(3 * MiB);  // class 4 MiB
  void* p2 = a.allocate(100);      // class 512 B
  CudaMemoryStats s = a.stats();
  CHECK(s.allocated == 4 * MiB + 512);
  CHECK(s.reserved == 4 * MiB + 512);
  CHECK(s.cached == 0);
  CHECK(s.peak_allocated == 4 * MiB + 512);
  a.release(p1);
  s = a.stats();
  CHECK(s.allocated == 512);
  CHECK(s.reserved == 4 * MiB + 512);
  CHECK(s.cached == 4 * MiB);
  CHECK(s.peak_allocated == 4 * MiB + 512);  // the peak stays
  a.reset_peak_stats();
  CHECK(a.stats().peak_allocated == 512);
  a.empty_cache();
  s = a.stats();
  CHECK(s.reserved == 512);
  CHECK(s.cached == 0);
  CHECK(s.num_backend_frees == 1);
  CHECK(dev.in_use == 512);
  a.release(p2);
  const std::string text = to_string(a.stats());
  CHECK(text.find("reserved 512 B") != std::string::npos);
}

TEST_CASE("allocator: a loop of alloc/free of the same sizes does not grow", "[allocator]") {
  FakeDevice dev;
  Alloc a(FakeBackend{&dev});
  const size_t sizes[] = {4, 1000, 64 * KiB, 3 * MiB, 17 * MiB};
  for (int step = 0; step < 100; ++step) {
    std::vector<void*> ps;
    for (size_t n : sizes) ps.push_back(a.allocate(n));
    for (void* p : ps) a.release(p);
  }
  const CudaMemoryStats s = a.stats();
  CHECK(s.num_backend_allocs == 5);  // the first step only
  CHECK(s.num_cache_hits == 5 * 99);
  CHECK(s.allocated == 0);
  size_t expected_reserved = 0;
  for (size_t n : sizes) expected_reserved += Alloc::round_size(n);
  CHECK(s.reserved == expected_reserved);
  CHECK(s.peak_reserved == expected_reserved);
  CHECK(dev.in_use == expected_reserved);
}

TEST_CASE("allocator: without caching every block goes back to the backend at once",
          "[allocator]") {
  FakeDevice dev;
  Alloc a(FakeBackend{&dev}, /*caching=*/false);
  for (int i = 0; i < 10; ++i) a.release(a.allocate(5000));
  const CudaMemoryStats s = a.stats();
  CHECK(s.num_backend_allocs == 10);
  CHECK(s.num_backend_frees == 10);
  CHECK(s.num_cache_hits == 0);
  CHECK(s.reserved == 0);
  CHECK(s.peak_reserved == Alloc::round_size(5000));
  CHECK(dev.live.empty());
}

TEST_CASE("allocator: out of memory frees the cache and retries, then reports the stats",
          "[allocator]") {
  FakeDevice dev;
  dev.capacity = 10 * MiB;
  Alloc a(FakeBackend{&dev});
  void* p = a.allocate(6 * MiB);
  a.release(p);  // 6 MiB cached, 4 MiB left on the device
  // 8 MiB does not fit next to the cached block: the allocator must release it and retry.
  void* q = a.allocate(8 * MiB);
  CHECK(q != nullptr);
  CudaMemoryStats s = a.stats();
  CHECK(s.num_ooms == 1);
  CHECK(s.cached == 0);
  CHECK(s.reserved == 8 * MiB);
  // Now nothing can be freed: a real OOM, whose message names the request, the device and
  // the allocator's numbers.
  try {
    a.allocate(4 * MiB);
    FAIL("expected an out-of-memory error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("out of memory") != std::string::npos);
    CHECK(msg.find("4.00 MiB") != std::string::npos);
    CHECK(msg.find("fake device") != std::string::npos);
    CHECK(msg.find("allocated 8.00 MiB") != std::string::npos);
    CHECK(msg.find("backend allocs") != std::string::npos);
  }
  s = a.stats();
  CHECK(s.num_ooms == 2);
  CHECK(s.allocated == 8 * MiB);  // the failed request left no trace
  a.release(q);
}

TEST_CASE("allocator: destruction returns cached blocks; unknown pointers are ignored",
          "[allocator]") {
  FakeDevice dev;
  {
    Alloc a(FakeBackend{&dev});
    void* p = a.allocate(100);
    int on_stack = 0;
    a.release(&on_stack);  // not ours: ignored, not passed to the backend
    a.release(p);
    CHECK(dev.live.size() == 1);
  }
  CHECK(dev.live.empty());
  CHECK(dev.frees == 1);
  CHECK(dev.foreign_frees == 0);
}
