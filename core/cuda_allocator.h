#pragma once
// The caching allocator behind CUDA tensors, written against an abstract backend so that its
// bookkeeping is plain C++ (tests/test_allocator.cpp runs it on the CPU with a fake backend;
// core/cuda_allocator.cu instantiates it over cudaMalloc/cudaFree, one per device).
//
// Why cache: cudaMalloc and cudaFree are slow (cudaFree synchronises the device), and a
// training step frees and re-allocates the same tensor sizes every iteration. Freed blocks go
// to a free list and the next request of the same size class takes one from there.
//
// Policy:
//   * Size classes: a request of n bytes is rounded up to a multiple of 512 B when it is at
//     most 1 MiB ("small"), and to a multiple of 2 MiB above that ("large"). 0 bytes counts
//     as 1 (every allocation gets a unique pointer).
//   * A request is served only from the free list of its own size class: cached blocks are
//     never split and never handed out for a smaller request, so a block's size is always its
//     class and no fragmentation bookkeeping is needed. (The cost: memory cached in one class
//     cannot serve another class until empty_cache().)
//   * When the backend reports out of memory, the allocator returns every cached block to the
//     backend and retries once; if that fails too it throws cvg::Error with the statistics.
//   * caching = false (CVG_CUDA_CACHE=0 for the CUDA instance) passes every request straight
//     to the backend and frees immediately, so tools like compute-sanitizer see each buffer's
//     real lifetime. Sizes are still rounded and statistics still kept.
//
// The backend type provides
//     void* alloc(size_t bytes);     // nullptr when out of memory
//     void free(void* p);
//     std::string describe() const;  // device name and free memory, for error messages
//
// Thread-safe (one mutex). The stream model is the default stream only: a block freed after
// kernels were queued that use it can be reused at once, because later kernels on the same
// stream run after them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace cvg {

struct CudaMemoryStats {
  size_t allocated = 0;        // bytes in blocks currently handed out (rounded sizes)
  size_t requested = 0;        // bytes currently handed out, as requested (unrounded)
  size_t reserved = 0;         // bytes held from the backend: handed out + cached
  size_t cached = 0;           // bytes in free lists (reserved - allocated)
  size_t peak_allocated = 0;   // high-water mark of `allocated` since the last reset
  size_t peak_reserved = 0;    // high-water mark of `reserved` since the last reset
  uint64_t num_allocs = 0;     // allocate() calls
  uint64_t num_cache_hits = 0; // allocate() calls served from a free list
  uint64_t num_backend_allocs = 0;  // cudaMalloc calls (successful)
  uint64_t num_backend_frees = 0;   // cudaFree calls
  uint64_t num_ooms = 0;            // backend out-of-memory events (including recovered ones)
};

// "allocated 1.5 MiB (requested 1.2 MiB), reserved 4 MiB (cached 2.5 MiB), peak allocated
//  3 MiB, peak reserved 4 MiB, 12 allocations (9 from cache), 3 backend allocs, 0 frees,
//  0 OOMs"
std::string format_bytes(size_t bytes);
std::string to_string(const CudaMemoryStats& s);

inline std::string format_bytes(size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  std::ostringstream os;
  os.precision(u == 0 ? 0 : 2);
  os << std::fixed << v << " " << units[u];
  return os.str();
}

inline std::string to_string(const CudaMemoryStats& s) {
  return str_cat("allocated ", format_bytes(s.allocated), " (requested ",
                 format_bytes(s.requested), "), reserved ", format_bytes(s.reserved),
                 " (cached ", format_bytes(s.cached), "), peak allocated ",
                 format_bytes(s.peak_allocated), ", peak reserved ",
                 format_bytes(s.peak_reserved), ", ", s.num_allocs, " allocations (",
                 s.num_cache_hits, " from cache), ", s.num_backend_allocs, " backend allocs, ",
                 s.num_backend_frees, " backend frees, ", s.num_ooms, " OOMs");
}

template <typename Backend>
class CachingAllocator {
 public:
  static constexpr size_t kSmallQuantum = 512;
  static constexpr size_t kSmallLimit = size_t(1) << 20;  // 1 MiB
  static constexpr size_t kLargeQuantum = size_t(2) << 20;  // 2 MiB

  // The size class (bytes actually reserved) of a request of n bytes.
  static size_t round_size(size_t n) {
    if (n == 0) n = 1;
    const size_t q = n <= kSmallLimit ? kSmallQuantum : kLargeQuantum;
    return (n + q - 1) / q * q;
  }

  explicit CachingAllocator(Backend backend, bool caching = true)
      : backend_(std::move(backend)), caching_(caching) {}
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;
  // Returns cached blocks; blocks still handed out are the caller's to release first.
  ~CachingAllocator() { empty_cache(); }

  bool caching() const { return caching_; }
  Backend& backend() { return backend_; }

  void* allocate(size_t nbytes) {
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.num_allocs;
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached -= size;
      ++stats_.num_cache_hits;
    } else {
      p = backend_alloc_locked(size, nbytes);
    }
    live_.emplace(p, Block{size, nbytes});
    stats_.allocated += size;
    stats_.requested += nbytes;
    stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
    return p;
  }

  // Gives a block back (to the free list, or to the backend when not caching). Never throws:
  // it runs in destructors. A pointer this allocator did not hand out is ignored.
  void release(void* p) noexcept {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;
    const Block b = it->second;
    live_.erase(it);
    stats_.allocated -= b.size;
    stats_.requested -= b.requested;
    if (caching_) {
      free_[b.size].push_back(p);
      stats_.cached += b.size;
    } else {
      backend_free_locked(p, b.size);
    }
  }

  // Returns every cached (free) block to the backend.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    empty_cache_locked();
  }

  CudaMemoryStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  // Peaks restart from the current values (to measure the peak of one phase).
  void reset_peak_stats() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated = stats_.allocated;
    stats_.peak_reserved = stats_.reserved;
  }

 private:
  struct Block {
    size_t size;       // size class
    size_t requested;  // what the caller asked for
  };

  void* backend_alloc_locked(size_t size, size_t requested) {
    void* p = backend_.alloc(size);
    if (!p) {
      // Out of memory: free lists of other size classes may hold enough; give them back and
      // try once more.
      ++stats_.num_ooms;
      empty_cache_locked();
      p = backend_.alloc(size);
    }
    if (!p)
      fail("CUDA out of memory: tried to allocate ", format_bytes(requested), " (size class ",
           format_bytes(size), ") on ", backend_.describe(), "; cvgrad allocator: ",
           to_string(stats_),
           ". Free tensors you no longer need (or reduce the batch size); "
           "cuda_memory_stats() reports these numbers.");
    ++stats_.num_backend_allocs;
    stats_.reserved += size;
    stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
    return p;
  }

  void backend_free_locked(void* p, size_t size) noexcept {
    backend_.free(p);
    ++stats_.num_backend_frees;
    stats_.reserved -= size;
  }

  void empty_cache_locked() {
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) backend_free_locked(p, size);
      stats_.cached -= size * blocks.size();
      blocks.clear();
    }
    free_.clear();
  }

  Backend backend_;
  const bool caching_;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  std::unordered_map<void*, Block> live_;                 // handed-out blocks
  CudaMemoryStats stats_;
};

}  // namespace cvg
