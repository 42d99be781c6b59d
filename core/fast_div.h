#pragma once
// FastDivOf<I>: exact division of a non-negative index (I = int64_t or int32_t) by a divisor
// fixed when the divider is made, with one N x N -> high-N multiply (N = 64 or 32 bits), an add
// and two shifts instead of a division. FastDiv is the 64-bit one, FastDiv32 the 32-bit one.
//
// Why: kernels that decode a flat element index into (n, i, j, ky, kx) or into strided offsets
// divide by the same sizes for every element. A 64-bit division is a ~70-instruction software
// routine on the GPU and 40-90 cycles on older x86 cores; it made the memory-bound Deep
// Matching layers compute-bound (20-50 % of copy bandwidth on an H100). The divisor is known on
// the host before the launch, so the host precomputes a "magic" multiplier once. The 32-bit
// divider exists because a GPU has no 64-bit integer ALU: __umul64hi is a sequence of 32-bit
// multiplies and every 64-bit add or compare two instructions, while __umulhi is one; kernels
// whose tensors all hold fewer than 2^31 elements index in 32 bits (kernels/deepmatch.h).
//
// Method: Granlund and Montgomery, "Division by invariant integers using multiplication"
// (PLDI 1994), section 4 (unsigned, N bits): with l = ceil(log2 d),
//     m = floor(2^N (2^l - d) / d) + 1,  t = mulhi(m, n),
//     n / d = (t + ((n - t) >> min(l, 1))) >> max(l - 1, 0)
// exact for every 0 <= n < 2^N and 1 <= d < 2^N (no intermediate overflows: t <= n; m < 2^N
// because 2^l - d < d). The constructor is host-only (it needs a 2N-by-N division); div/mod run
// on both devices.
#include <cstdint>
#include <limits>

#include "core/error.h"
#include "core/hd.h"

namespace cvg {

template <typename I>
struct FastDivWords;
template <>
struct FastDivWords<int64_t> {
  using U = uint64_t;
  using Wide = unsigned __int128;
};
template <>
struct FastDivWords<int32_t> {
  using U = uint32_t;
  using Wide = uint64_t;
};

template <typename I>
class FastDivOf {
  using U = typename FastDivWords<I>::U;
  using Wide = typename FastDivWords<I>::Wide;
  static constexpr int kBits = 8 * sizeof(U);

 public:
  FastDivOf() = default;  // divides by 1
  explicit FastDivOf(int64_t divisor) {
    CVG_CHECK(divisor >= 1 && divisor <= std::numeric_limits<I>::max(), "FastDiv",
              kBits == 32 ? "32" : "", ": divisor must be in [1, ",
              std::numeric_limits<I>::max(), "], got ", divisor);
    d_ = static_cast<U>(divisor);
    int l = 0;
    while ((U{1} << l) < d_) ++l;  // d < 2^(N-1), so l <= N - 1 and 2^l fits
    const Wide num = static_cast<Wide>((U{1} << l) - d_) << kBits;
    m_ = static_cast<U>(num / d_) + 1;
    s1_ = l < 1 ? l : 1;
    s2_ = l > 1 ? l - 1 : 0;
  }

  // A divider by a tensor size: kernels over an empty tensor launch nothing, so a zero size
  // only needs some valid divider (1).
  static FastDivOf for_size(int64_t size) { return FastDivOf(size > 0 ? size : 1); }

  CVG_HD I divisor() const { return static_cast<I>(d_); }

  // n / d for n >= 0 (callers index elements; a negative n is outside the contract).
  CVG_HD I div(I n) const {
    const U u = static_cast<U>(n);
    const U t = mulhi(m_, u);
    return static_cast<I>((t + ((u - t) >> s1_)) >> s2_);
  }
  CVG_HD I mod(I n) const { return n - div(n) * static_cast<I>(d_); }

 private:
  CVG_HD static U mulhi(U a, U b) {
#if defined(__CUDA_ARCH__)
    if constexpr (kBits == 64)
      return __umul64hi(a, b);
    else
      return __umulhi(a, b);
#else
    return static_cast<U>((static_cast<Wide>(a) * b) >> kBits);
#endif
  }

  U d_ = 1;
  U m_ = 1;  // for d = 1 (l = 0): t = 0 and the result is n
  int s1_ = 0, s2_ = 0;
};

using FastDiv = FastDivOf<int64_t>;
using FastDiv32 = FastDivOf<int32_t>;

}  // namespace cvg
