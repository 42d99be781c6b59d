#pragma once
// FastDiv: exact division of a non-negative int64 by a divisor fixed when the FastDiv is made,
// with one 64 x 64 -> high-64 multiply, an add and two shifts instead of a division.
//
// Why: kernels that decode a flat element index into (n, i, j, ky, kx) or into strided offsets
// divide by the same sizes for every element. A 64-bit division is a ~70-instruction software
// routine on the GPU and 40-90 cycles on older x86 cores; it made the memory-bound Deep
// Matching layers compute-bound (20-50 % of copy bandwidth on an H100). The divisor is known on
// the host before the launch, so the host precomputes a "magic" multiplier once.
//
// Method: Granlund and Montgomery, "Division by invariant integers using multiplication"
// (PLDI 1994), section 4 (unsigned, N = 64 bits): with l = ceil(log2 d),
//     m = floor(2^64 (2^l - d) / d) + 1,  t = mulhi(m, n),
//     n / d = (t + ((n - t) >> min(l, 1))) >> max(l - 1, 0)
// exact for every 0 <= n < 2^64 and 1 <= d < 2^64 (no intermediate overflows: t <= n). The
// constructor is host-only (it needs a 128-by-64 division); div/mod run on both devices.
#include <cstdint>

#include "core/error.h"
#include "core/hd.h"

namespace cvg {

class FastDiv {
 public:
  FastDiv() = default;  // divides by 1
  explicit FastDiv(int64_t divisor) : d_(static_cast<uint64_t>(divisor)) {
    CVG_CHECK(divisor >= 1, "FastDiv: divisor must be >= 1, got ", divisor);
    int l = 0;
    while (l < 63 && (uint64_t{1} << l) < d_) ++l;  // d < 2^63, so l <= 63 and 2^l fits
    const unsigned __int128 num = static_cast<unsigned __int128>((uint64_t{1} << l) - d_) << 64;
    m_ = static_cast<uint64_t>(num / d_) + 1;
    s1_ = l < 1 ? l : 1;
    s2_ = l > 1 ? l - 1 : 0;
  }

  // A divider by a tensor size: kernels over an empty tensor launch nothing, so a zero size
  // only needs some valid divider (1).
  static FastDiv for_size(int64_t size) { return FastDiv(size > 0 ? size : 1); }

  CVG_HD int64_t divisor() const { return static_cast<int64_t>(d_); }

  // n / d for n >= 0 (callers index elements; a negative n is outside the contract).
  CVG_HD int64_t div(int64_t n) const {
    const uint64_t u = static_cast<uint64_t>(n);
#if defined(__CUDA_ARCH__)
    const uint64_t t = __umul64hi(m_, u);
#else
    const uint64_t t =
        static_cast<uint64_t>((static_cast<unsigned __int128>(m_) * u) >> 64);
#endif
    return static_cast<int64_t>((t + ((u - t) >> s1_)) >> s2_);
  }
  CVG_HD int64_t mod(int64_t n) const { return n - div(n) * static_cast<int64_t>(d_); }

 private:
  uint64_t d_ = 1;
  uint64_t m_ = 1;  // for d = 1 (l = 0): t = 0 and the result is n
  int s1_ = 0, s2_ = 0;
};

}  // namespace cvg
