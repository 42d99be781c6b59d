// Host blocks (core/storage.cpp): small and medium ones from the heap, 64-byte aligned (the whole
// 2 MiB pages of those of 4 MiB and more advised as huge pages); blocks of 64 MiB and more mapped
// as transparent huge pages, 2 MiB aligned. Every block holds what is
// written to it, from its first byte to the 64 bytes of slack past its end, and goes back
// without disturbing the others.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/storage.h"
#include "core/tensor.h"

using namespace cvg;

namespace {

// Writes a pattern over [0, nbytes + 64) at every 4 KiB and the last bytes, then reads it back.
bool holds_pattern(void* p, size_t nbytes) {
  auto* b = static_cast<unsigned char*>(p);
  const size_t end = nbytes + 64;
  std::vector<size_t> at;
  for (size_t i = 0; i < end; i += 4096) at.push_back(i);
  for (size_t i = end - 64; i < end; ++i) at.push_back(i);
  for (const size_t i : at) b[i] = static_cast<unsigned char>(i * 31 + 7);
  for (const size_t i : at)
    if (b[i] != static_cast<unsigned char>(i * 31 + 7)) return false;
  return true;
}

}  // namespace

TEST_CASE("host memory: alignment by size, contents kept to the slack past the end",
          "[tensor]") {
  const size_t large = size_t{64} << 20;
  // 5 MiB + 3: a heap block whose whole 2 MiB pages are advised as huge pages.
  for (const size_t n : {size_t{0}, size_t{1}, size_t{1000}, (size_t{5} << 20) + 3, large - 1,
                         large, large + 1,
                         large + (size_t{3} << 20) - 64, large + (size_t{3} << 20)}) {
    INFO(n << " bytes");
    void* p = allocate_bytes(n, kCPU);
    const size_t align = host_block_alignment(n);
#if defined(__linux__)
    CHECK(align == (n >= large ? size_t{2} << 20 : 64));
#endif
    CHECK(reinterpret_cast<uintptr_t>(p) % align == 0);
    CHECK(holds_pattern(p, n));
    free_bytes(p, n, kCPU);
  }
  // Several large blocks at once stay apart; freeing one leaves the others intact.
  std::vector<void*> blocks;
  for (int i = 0; i < 3; ++i) {
    blocks.push_back(allocate_bytes(large + i * 4096, kCPU));
    std::memset(blocks.back(), i + 1, large + i * 4096 + 64);
  }
  free_bytes(blocks[1], large + 4096, kCPU);
  for (const int i : {0, 2}) {
    const auto* b = static_cast<const unsigned char*>(blocks[i]);
    CHECK(b[0] == i + 1);
    CHECK(b[large + i * 4096 + 63] == i + 1);
  }
  free_bytes(blocks[0], large, kCPU);
  free_bytes(blocks[2], large + 2 * 4096, kCPU);
}

TEST_CASE("host memory: a tensor of 64 MiB and more reads back what was written", "[tensor]") {
  const int64_t n = (int64_t{64} << 20) / 4 + 5;  // float32 elements: just above the threshold
  Tensor t = Tensor::empty({n}, TensorOptions{});
  float* d = t.data<float>();
  for (int64_t i = 0; i < n; i += 1021) d[i] = static_cast<float>(i);
  d[n - 1] = -1.0f;
  const Tensor c = t.clone();
  for (int64_t i = 0; i < n; i += 1021) CHECK(c.data<float>()[i] == static_cast<float>(i));
  CHECK(c.data<float>()[n - 1] == -1.0f);
}
