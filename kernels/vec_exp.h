#pragma once
// A vectorisable exp for CPU loops (kernels/unary_cpu.cpp; kernels/spatial_math.h builds its
// exp_nonpositive on the same pieces).
//
// std::exp is a call into libm per element, which the compiler cannot vectorise (without
// -ffast-math). vec_exp computes exp(x) for every x with nothing but multiply-adds, compares
// and integer bit operations, so a plain loop over it vectorises:
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
//   so n ln2_hi is exact for every n reached here): r keeps full relative precision.
// * Degree D: |r| <= 0.3466 and the first omitted term r^(D+1)/(D+1)! must be below the type's
//   epsilon: D = 7 gives 5e-9 for float (eps 6e-8), D = 13 gives 4e-18 for double (eps 1e-16).
//   exp(0) = 1 exactly (n = 0, r = 0).
// * The whole range. x is first clamped to [kMin, kMax], two points just beyond where exp
//   underflows to 0 and overflows to inf, which keeps n inside [-2 (bias - 2), bias + 1].
//   2^n is then applied as two factors 2^(n/2) and 2^(n - n/2), each a normal number, so that
//   results that are subnormal, 0 or inf come out of the final multiplication with a single
//   rounding, as std::exp gives them: exp(kMin) rounds to 0, exp(kMax) to inf, and so do -inf
//   and +inf (clamped to those points). NaN gives NaN (the same NaN).
// * Accuracy: within a few ulp of std::exp over the whole range (tests/ops/test_vec_exp.cpp).
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
  // exp(-110) = 1.7e-48 rounds to 0 (the smallest subnormal is 1.4e-45), exp(89) = 4.5e38 to
  // inf (the largest float is 3.4e38); n stays in [-159, 128].
  static constexpr float kMin = -110.0f;
  static constexpr float kMax = 89.0f;
  // exp_nonpositive (spatial_math.h) gives 0 below this point, where exp is below the smallest
  // normal number.
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
  // exp(-750) = 2.0e-326 rounds to 0 (the smallest subnormal is 4.9e-324), exp(710) = 2.2e308
  // to inf (the largest double is 1.8e308); n stays in [-1082, 1024].
  static constexpr double kMin = -750.0;
  static constexpr double kMax = 710.0;
  static constexpr double kLow = -708.0;  // as for float
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

// The float 2^e for an exponent e whose biased field e + bias is in [1, 2 bias] (a normal number).
template <typename T>
inline T exp2_bits(typename ExpConstants<T>::Bits e) {
  using C = ExpConstants<T>;
  return std::bit_cast<T>(static_cast<typename C::Bits>((e + C::kBias) << C::kMantissa));
}

// exp(x) for every x, branch-free (see above).
template <typename T>
inline T vec_exp(T x) {
  using C = ExpConstants<T>;
  using Bits = typename C::Bits;
  constexpr int kTop = 8 * sizeof(Bits) - 1;
  constexpr Bits kSign = std::numeric_limits<Bits>::min();  // the sign bit
  // The clamp to [kMin, kMax] is done on the bits, in integer arithmetic: GCC 12 turns a
  // floating-point select (x < kMin ? kMin : x) whose result is used more than once into a
  // branch, and a loop with a branch does not vectorise. The integer order of the bits of
  // |x| is the numeric order of |x| (inf included; NaN bits lie above inf's).
  const Bits bits = std::bit_cast<Bits>(x);
  const Bits mag = bits & ~kSign;
  const Bits negative = bits >> kTop;  // all ones where the sign bit is set
  const Bits limit = (std::bit_cast<Bits>(-C::kMin) & negative) |
                     (std::bit_cast<Bits>(C::kMax) & ~negative);
  const Bits d = limit - mag;
  const Bits beyond = d >> kTop;  // all ones where |x| > |limit| (NaN included)
  const Bits nan = (std::bit_cast<Bits>(std::numeric_limits<T>::infinity()) - mag) >> kTop;
  x = std::bit_cast<T>((mag + (d & beyond)) | (bits & kSign));
  const T t = x * T(1.4426950408889634) + C::kMagic;  // x / ln2 + magic, rounded
  const T n = t - C::kMagic;
  const T r = (x - n * C::kLn2Hi) - n * C::kLn2Lo;
  const Bits ni = std::bit_cast<Bits>(t) - std::bit_cast<Bits>(C::kMagic);
  const Bits half = ni >> 1;  // floor(n / 2): both halves lie in [-bias + 2, bias]
  const T y = exp_taylor(r) * exp2_bits<T>(half) * exp2_bits<T>(ni - half);
  // NaN was clamped like a huge number above; it is put back here, as it came.
  return std::bit_cast<T>((std::bit_cast<Bits>(y) & ~nan) | (bits & nan));
}

}  // namespace cvg
