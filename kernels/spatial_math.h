#pragma once
// A vectorisable exp for the CPU spatial softmax (spatial_cpu.cpp).
//
// std::exp is a call into libm per element, which the compiler cannot vectorise (without
// -ffast-math), and it dominated the CPU spatial_softmax. exp_nonpositive computes exp(x) for
// the only arguments a max-shifted softmax produces, x <= 0 (-inf included), with nothing but
// multiply-adds and integer bit operations, so a plain loop over it vectorises:
//
//   x = n ln2 + r,  n = round(x / ln2),  |r| <= ln2 / 2          (range reduction)
//   exp(x) = 2^n exp(r)
//   exp(r) = sum_{k <= D} r^k / k!                                (Taylor, Horner's rule)
//   2^n    = the float whose exponent field is n + bias           (bit construction)
//
// * Rounding: t = x / ln2 + 1.5 * 2^p (p = mantissa bits) rounds x / ln2 to an integer in
//   round-to-nearest, and then the low bits of t's representation ARE n: bits(t) - bits(1.5 2^p)
//   = n, so n is read off in the float's own integer width (no float -> int conversion, which
//   has no vector instruction for double on SSE2).
// * r = (x - n ln2_hi) - n ln2_lo with ln2 split Cody-Waite style (ln2_hi has trailing zero bits,
//   so n ln2_hi is exact): r keeps full relative precision.
// * Degree D: |r| <= 0.3466 and the first omitted term r^(D+1)/(D+1)! must be below the type's
//   epsilon: D = 7 gives 5e-9 for float (eps 6e-8), D = 13 gives 4e-18 for double (eps 1e-16).
//   The result is within a few ulp of std::exp (tests/ops/test_spatial.cpp checks 4 ulp).
// * exp(0) = 1 exactly (n = 0, r = 0), so the maximum of a softmax plane gets exactly 1.
// * Below kLow (float -87, double -708; exp there is below the smallest normal number) the
//   result is 0 instead of a subnormal: a probability under 1e-38 relative to the plane's peak.
//   -inf gives 0, as exp(-inf). The sign bit of x is not read (x is taken as -|x|), and NaN
//   gives 0: callers deal with NaN themselves.
// Host only: the CUDA kernels use the device's exp.
#include <bit>
#include <cstdint>
#include <limits>

namespace cvg {

template <typename T>
struct ExpConstants;

template <>
struct ExpConstants<float> {
  using Bits = int32_t;
  static constexpr float kLow = -87.0f;
  static constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  static constexpr Bits kBias = 127;
  static constexpr int kMantissa = 23;
  static constexpr float kLn2Hi = 0.693145751953125f;  // 12 significant bits
  static constexpr float kLn2Lo = 1.428606765330187e-06f;
  static constexpr int kDegree = 7;
};

template <>
struct ExpConstants<double> {
  using Bits = int64_t;
  static constexpr double kLow = -708.0;
  static constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr Bits kBias = 1023;
  static constexpr int kMantissa = 52;
  static constexpr double kLn2Hi = 6.93147180369123816490e-01;  // fdlibm's split
  static constexpr double kLn2Lo = 1.90821492927058770002e-10;
  static constexpr int kDegree = 13;
};

// The Taylor coefficients 1 / k!, k = 0..D, rounded to T.
template <typename T>
struct ExpTaylor {
  T c[ExpConstants<T>::kDegree + 1];
  constexpr ExpTaylor() : c() {
    double f = 1;
    for (int k = 0; k <= ExpConstants<T>::kDegree; ++k) {
      if (k > 0) f /= k;
      c[k] = static_cast<T>(f);
    }
  }
};

template <typename T>
inline constexpr ExpTaylor<T> kExpTaylor{};

// c_k + r (c_(k+1) + r (... + r c_D)): Horner's rule, unrolled at compile time (a runtime loop
// here would keep the caller's loop from vectorising).
template <typename T, int k = 0>
inline T exp_taylor(T r) {
  if constexpr (k == ExpConstants<T>::kDegree)
    return kExpTaylor<T>.c[k];
  else
    return exp_taylor<T, k + 1>(r) * r + kExpTaylor<T>.c[k];
}

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
