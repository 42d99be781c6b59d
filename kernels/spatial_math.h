#pragma once
// A vectorisable exp for the CPU spatial softmax (spatial_cpu.cpp), on the pieces of
// kernels/vec_exp.h (constants, Taylor polynomial).
//
// exp_nonpositive computes exp(x) for the only arguments a max-shifted softmax produces, x <= 0
// (-inf included), by vec_exp's method (range reduction, Taylor polynomial, 2^n from the
// exponent bits; see kernels/vec_exp.h), specialised to that range: one factor 2^n instead of
// two, and the clamp done on integer bits. Within a few ulp of std::exp (tests/ops/
// test_spatial.cpp checks 2 ulp).
// * exp(0) = 1 exactly (n = 0, r = 0), so the maximum of a softmax plane gets exactly 1.
// * Below kLow (float -87, double -708; exp there is below the smallest normal number) the
//   result is 0 instead of a subnormal: a probability under 1e-38 relative to the plane's peak.
//   -inf gives 0, as exp(-inf). The sign bit of x is not read (x is taken as -|x|), and NaN
//   gives 0: callers deal with NaN themselves.
// Host only: the CUDA kernels use the device's exp.
#include <bit>
#include <cstdint>
#include <limits>

#include "kernels/vec_exp.h"

namespace cvg {

// exp(x) for x <= 0 (see above): -inf gives 0. Branch-free, so that loops over it vectorise.
template <typename T>
inline T exp_nonpositive(T x) {
  using C = ExpConstants<T>;
  using Bits = typename C::Bits;
  constexpr Bits kSign = std::numeric_limits<Bits>::min();  // the sign bit
  // Clamping to kLow is done on the bits of |x| in integer arithmetic: GCC 12 keeps a
  // floating-point select (x < kLow ? kLow : x) whose result is used twice as a branch, and
  // a loop with a branch does not vectorise. Since x <= 0, |x| > |kLow| means x < kLow; the
  // integer order of the bits of non-negative floats is their numeric order (-inf included).
  const Bits mag = std::bit_cast<Bits>(x) & ~kSign;
  const Bits d = std::bit_cast<Bits>(-C::kLow) - mag;
  const Bits under = d >> (8 * sizeof(Bits) - 1);  // all ones where x < kLow, else 0
  x = std::bit_cast<T>((mag + (d & under)) | kSign);  // -min(|x|, |kLow|)
  const T t = x * T(1.4426950408889634) + C::kMagic;  // x / ln2 + magic, rounded
  const T n = t - C::kMagic;
  const T r = (x - n * C::kLn2Hi) - n * C::kLn2Lo;
  // The exponent field of 2^n, or 0 (the bits of +0.0) below kLow.
  const Bits e = (std::bit_cast<Bits>(t) - std::bit_cast<Bits>(C::kMagic) + C::kBias) & ~under;
  return exp_taylor(r) * std::bit_cast<T>(static_cast<Bits>(e << C::kMantissa));
}

}  // namespace cvg
